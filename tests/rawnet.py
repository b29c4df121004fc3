"""Raw TCP servers on a loopback address for tests that need bytes no HTTP library would
send or accept: scripted replies, proxies, a SOCKS server, a host beyond the archive.
Each subclass says how it serves one connection; accepting, counting and stopping are
here."""

from __future__ import annotations

import socket
import threading


class Listener:
    """Accepts on host (127.0.0.1 unless told) at a free port, each connection served in
    its own thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.connections = 0
        self.host = host
        self.listener = socket.create_server((host, 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


def read_head(conn: socket.socket) -> bytes:
    """Bytes up to and including the blank line after a head; b"" if the peer hangs up first."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return b""
        data += more
    return data


def pipe_both_ways(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes between a and b until either side closes (a proxy's tunnel)."""
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join()
