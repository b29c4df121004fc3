"""Replay through pywb (the ``replay`` extra) over archiver's folders: ``warcs/`` as
archive_paths, ``indexes/`` as index_paths. Used by ``archiver replay`` and the tests.

``running_pywb`` writes a config.yaml into a scratch folder, starts pywb's FrontEndApp in
a child process (pywb monkey-patches the interpreter with gevent, which must not happen
inside the parent, e.g. pytest) on a socket the parent has already bound to a free port,
waits until pywb answers an HTTP request, and stops the child on exit.

The collections are replay-only: each has its own index and archive paths, and there is
no ``$live`` index, ``sequence``, recorder or proxy, so pywb never falls back to the live
web; a URL that is not in the index is a 404.

Nothing here imports pywb or gevent in the parent process; ``serve`` is what the child
(``python -m archiver.replay.pywb CONFIG FD``) runs.

Isolation of archived pages from each other, pywb's index API and the network:
``guard.Guard`` (replay/guard.py) wraps pywb in the child.
"""

from __future__ import annotations

if __name__ == "__main__":  # the child: gevent must patch the interpreter before anything else
    from gevent.monkey import patch_all
    patch_all()

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator, Mapping  # noqa: E402

from archiver.errors import ArchiverError  # noqa: E402
from archiver.replay.guard import SANDBOX_SHIM, Guard  # noqa: E402

COLLECTION = "archive"   # the collection name in replay URLs
STARTUP_TIMEOUT = 60.0   # seconds pywb may take to load before it must answer
STOP_TIMEOUT = 10.0      # seconds between SIGTERM and SIGKILL
HEAD_INSERT = "archiver_head_insert.html"  # pywb's head insert after guard.SANDBOX_SHIM


@dataclass(frozen=True)
class Collection:
    """One pywb collection: where archiver put the WARC files and the CDXJ files."""
    warc_dir: Path
    index_dir: Path


@dataclass(frozen=True)
class Pywb:
    """A running pywb: ``base`` is ``http://127.0.0.1:PORT``."""
    base: str
    process: subprocess.Popen
    log: Path

    def url(self, coll: str, timestamp: str, mode: str, target: str) -> str:
        """A replay URL, e.g. mode ``id_`` (raw payload) or ``mp_`` (rewritten, unframed)."""
        return f"{self.base}/{coll}/{timestamp}{mode}/{target}"


def pywb_config(collections: Mapping[str, Collection], workdir: Path) -> dict:
    """pywb settings for replay-only collections over archiver's folders."""
    return {
        # Auto collections live under collections_root; point it at an empty folder of our
        # own so only the collections below exist.
        "collections_root": str(workdir / "collections"),
        "collections": {
            name: {
                # archive_paths is a prefix the CDXJ "filename" is appended to: keep the slash.
                "archive_paths": str(c.warc_dir.resolve()) + os.sep,
                # A folder: pywb merges every *.cdxj in it and rereads it when it changes.
                "index_paths": str(c.index_dir.resolve()),
            }
            for name, c in collections.items()
        },
        "enable_memento": True,
        # No pywb CSP: the guard sets the policy of every response, not only of mp_ ones.
        "csp-header": "",
        # pywb's head insert after SANDBOX_SHIM (a file in workdir/templates, pywb's cwd).
        "head_insert_html": HEAD_INSERT,
    }


def write_config(collections: Mapping[str, Collection], workdir: Path) -> Path:
    """Write ``workdir/config.yaml`` (JSON is YAML, and needs no quoting rules of its own)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "collections").mkdir(exist_ok=True)
    for c in collections.values():
        # pywb only accepts an index folder that exists when it starts; an archive that
        # has not closed a WARC file yet has none.
        c.index_dir.mkdir(parents=True, exist_ok=True)
    (workdir / "templates").mkdir(exist_ok=True)
    (workdir / "templates" / HEAD_INSERT).write_text(
        f"<script>{SANDBOX_SHIM}</script>\n{{% include 'head_insert.html' %}}\n", encoding="utf-8")
    path = workdir / "config.yaml"
    path.write_text(json.dumps(pywb_config(collections, workdir), indent=2) + "\n", encoding="utf-8")
    return path


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket on ``port`` (0 = a free port chosen by the kernel)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


@contextmanager
def running_pywb(collections: Mapping[str, Collection], workdir: Path,
                 host: str = "127.0.0.1", port: int = 0,
                 startup_timeout: float = STARTUP_TIMEOUT) -> Iterator[Pywb]:
    """Start pywb in a child process over ``collections``; stop it on exit.

    The parent binds the socket and hands it to the child (no port race); once the child
    is gone the parent's copy is closed too, so a dead pywb refuses connections.
    """
    config = write_config(collections, workdir)
    log = workdir / "pywb.log"
    sock = listen(host, port)
    bound_port = sock.getsockname()[1]
    with open(log, "wb") as log_file:
        # stdin is a pipe the child watches: if this process dies, so does pywb.
        process = subprocess.Popen(
            [sys.executable, "-m", "archiver.replay.pywb", str(config), str(sock.fileno())],
            cwd=workdir, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),))
    sock.close()
    server = Pywb(f"http://{host}:{bound_port}", process, log)
    try:
        wait_ready(server, startup_timeout)
        for name in collections:
            check_collection(server, name)
        yield server
    finally:
        stop(process)


def wait_ready(server: Pywb, timeout: float) -> None:
    """Return once pywb answers GET / with 200; raise if it exits or the time runs out.

    The socket is listening before pywb has loaded, so a request waits in the backlog
    until pywb accepts it; connection refused means the child died (its log says why).
    """
    import http.client  # imported here: the child must not import ssl before gevent patches it

    deadline = time.monotonic() + timeout
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    while True:
        if server.process.poll() is not None:
            raise ArchiverError(f"pywb exited with {server.process.returncode}:\n{_tail(server.log)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ArchiverError(f"pywb did not answer within {timeout}s:\n{_tail(server.log)}")
        conn = http.client.HTTPConnection(host, int(port), timeout=remaining)
        try:
            conn.request("GET", "/")
            status = conn.getresponse().status
            if status == 200:
                return
            raise ArchiverError(f"pywb answered GET / with {status}:\n{_tail(server.log)}")
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            # The socket was listening before the child started, so this means the child
            # has gone or is going: give it a moment to exit, then the loop head reports it.
            try:
                server.process.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
        except (TimeoutError, socket.timeout):
            continue  # the loop head raises with the log
        finally:
            conn.close()


def check_collection(server: Pywb, name: str) -> None:
    """pywb skips a collection it cannot load (it only prints "Invalid Collection"): fail instead."""
    import http.client

    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", f"/{name}/")
        status = conn.getresponse().status
    finally:
        conn.close()
    if status != 200:
        raise ArchiverError(f"pywb has no collection {name!r} (GET /{name}/ -> {status}):\n{_tail(server.log)}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if pywb does not exit in time."""
    if process.stdin is not None:
        process.stdin.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def serve(config_file: Path, listener: socket.socket) -> None:
    """Serve pywb's FrontEndApp, guarded, on ``listener`` forever (call after gevent's patch_all)."""
    import logging

    from gevent.pywsgi import WSGIServer
    from pywb.apps.frontendapp import FrontEndApp
    from pywb.utils.geventserver import RequestURIWSGIHandler

    logging.basicConfig(format="%(asctime)s: [%(levelname)s]: %(message)s", level=logging.INFO)
    app = FrontEndApp(config_file=str(config_file))
    collections = json.loads(config_file.read_text(encoding="utf-8"))["collections"]
    WSGIServer(listener, Guard(app, collections), handler_class=RequestURIWSGIHandler).serve_forever()


def _exit_with_parent() -> None:
    """Block (in a real thread) until stdin reaches EOF, i.e. the parent closed it or died."""
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv: list[str]) -> None:
    """The child: ``python -m archiver.replay.pywb CONFIG_YAML LISTENING_FD``."""
    import gevent

    config_file, fd = Path(argv[0]), int(argv[1])
    gevent.get_hub().threadpool.spawn(_exit_with_parent)
    serve(config_file, socket.socket(fileno=fd))


if __name__ == "__main__":
    main(sys.argv[1:])
