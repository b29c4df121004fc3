"""``archiver serve``: a web interface over an archive, and its captures replayed beside it.

One command, one process serving two addresses:

- the interface (``--port``, default 8000): Flask, server-rendered, no script;
- the replay server (``[serve] replay_port``, default 8001): a proxy, in this process, to
  pywb started in a child process on the loopback address (replay.running_pywb, with
  replay/guard.py's isolation). ``/replay/...`` on the interface redirects there.

Why on its own port rather than under ``/replay/`` of the interface: the replay guard's
isolation is by origin. An archived page may reach its own origin (``'self'``) and pywb
builds every URL from the server's root (``/o-TOKEN/...``); on the interface's origin a
hostile capture could load the interface's pages and post to its forms (the CSRF token
stops the posts, but nothing else would). A port of its own is another origin: the
interface is out of its reach, and pywb runs exactly as under ``archiver replay``.

Both addresses are served by waitress (pure-Python WSGI server, threads, no C
extension); both check ``[serve] token`` when it is set, which a non-loopback ``--host``
requires. In token mode, a capture's own requests, which a browser sends from the
capture's sandbox without cookies, are let through under the replay prefixes pywb handed
to requests that carried the token (gate.Capabilities).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from archiver.config import Config
from archiver.errors import ConfigError

log = logging.getLogger("archiver")


@dataclass(frozen=True)
class Addresses:
    interface: str  # http://host:port
    replay: str


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(host: str, token: str) -> None:
    """A non-loopback address is served only with a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"--host {host} is not a loopback address: set [serve] token in config.toml "
                          "(every request must then carry it) or serve on 127.0.0.1")


@contextmanager
def running(config: Config, host: str, port: int, replay_port: int | None = None) -> Iterator[Addresses]:
    """Serve the interface and the replay proxy (and pywb) until the block ends."""
    from waitress.server import create_server

    from archiver.replay.pywb import COLLECTION, Collection, running_pywb
    from archiver.web.app import create_app
    from archiver.web.data import ArchiveData
    from archiver.web.gate import Capabilities, ReplayProxy, TokenGate

    token = config.serve.token
    check_access(host, token)
    replay_port = config.serve.replay_port if replay_port is None else replay_port
    data = ArchiveData(config)
    data.tags()  # the seed files read now, not on the first request (100,000 take seconds)
    gate: Callable = (lambda app, *more: TokenGate(app, token, *more)) if token else (lambda app, *more: app)
    collections = {COLLECTION: Collection(config.storage.warc_dir, config.storage.index_dir)}
    try:
        with running_pywb(collections, config.root / ".serve-replay", "127.0.0.1", 0) as pywb:
            backend_port = int(pywb.base.rsplit(":", 1)[1])
            proxy = gate(ReplayProxy("127.0.0.1", backend_port), Capabilities())
            replay = create_server(proxy, host=host, port=replay_port, threads=8, ident="archiver")
            public_replay = replay.effective_port
            app = create_app(data, lambda: _replay_base(public_replay))
            ui = create_server(gate(app), host=host, port=port, threads=4, ident="archiver")
            with _serving(replay), _serving(ui):
                yield Addresses(_address(host, ui.effective_port), _address(host, public_replay))
    finally:
        data.close()


def _replay_base(port: int) -> str:
    """The replay server as the browser of this request reaches it: its host, our port."""
    from flask import request

    host = request.host
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return f"{request.scheme}://{name}:{port}"


def _address(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


@contextmanager
def _serving(server) -> Iterator[None]:
    """Run a waitress server in a thread; on exit close its sockets in that thread (its
    trigger runs a function there), so its loop ends instead of polling closed sockets."""
    thread = threading.Thread(target=server.run, name="archiver-serve", daemon=True)
    thread.start()
    try:
        yield
    finally:
        def close_all() -> None:  # the listening socket, keep-alive connections, the trigger
            for dispatcher in list(server._map.values()):
                dispatcher.close()
        server.trigger.pull_trigger(close_all)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
