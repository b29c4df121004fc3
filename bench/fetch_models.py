#!/usr/bin/env python3
"""How much CPU fetching costs per URL, by how the fetches are run: archiver's Fetcher
(requests, since 2026-12-03) called from this thread, in the crawler's FetchPool (how a
capture runs them: fetch threads), on a ThreadPoolExecutor, and a minimal loop
fetching from one thread with non-blocking sockets (a floor). Evidence for a design
choice, not a comparison with a peer. (Until 2026-12-03 it compared the own client's
coroutine FetchLoop with fetch threads; see bench/README.md.)

Both fetch every URL of the capture benchmark's site (bench/capture_vs_wget.py: 200
articles, 1,406 URLs) from nginx on 127.0.0.1 over kept-alive connections, and compute
the two SHA-1 digests of each response. The loop reads Content-Length bodies only (the
site sends nothing else) and keeps bodies in memory; the Fetcher does all it does in a
capture (spool file, deadlines, framing of every kind).

Usage: python bench/fetch_models.py [--articles 200]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import selectors
import socket
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import StaticServer  # noqa: E402
from capture_vs_wget import build_site  # noqa: E402

from archiver.capture import http1
from archiver.config import load_config  # noqa: E402
from archiver.capture.pool import FetchPool  # noqa: E402
from archiver.capture.fetch import Fetcher  # noqa: E402
from archiver.archive.workdir import init_archive  # noqa: E402


def site_paths(root: Path) -> list[str]:
    paths = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    return ["/" + ("" if p == "index.html" else p.removesuffix("index.html")) for p in paths]


def fetcher_inline(fetcher: Fetcher, urls: list[str]) -> int:
    for url in urls:
        fetcher.fetch(url).close()
    return len(urls)


HEAD_END = re.compile(rb"\r?\n\r?\n")


def request_head_bytes(target: str, headers: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([f"GET {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]) + "\r\n\r\n").encode()


def fetch_loop(fetcher: Fetcher, urls: list[str], concurrency: int) -> int:
    """As the crawler does: at most `concurrency` fetches in flight in one FetchPool (threads)."""
    loop = FetchPool(lambda url: fetcher.fetch(url), concurrency, fetcher.cancel)
    todo, done = deque(urls), 0
    while todo or loop.in_flight:
        while todo and len(loop.in_flight) < concurrency:
            loop.submit(todo.popleft())
        for _, ex in loop.wait(None):
            ex.close()
            done += 1
    loop.close()
    return done


def fetcher_threads(fetcher: Fetcher, urls: list[str], threads: int) -> int:
    with ThreadPoolExecutor(threads) as pool:
        for ex in pool.map(fetcher.fetch, urls):
            ex.close()
    return len(urls)


def nonblocking_loop(host: str, port: int, paths: list[str], connections: int) -> int:
    """Requests on `connections` kept-alive sockets, responses read as they arrive."""
    todo, done = deque(paths), 0
    selector = selectors.DefaultSelector()
    headers = [("Host", f"{host}:{port}"), ("User-Agent", "bench"), ("Accept", "*/*")]

    def start(state: dict) -> bool:
        if not todo:
            return False
        state.update(buffer=bytearray(), response=None, head_digest=hashlib.sha1(), payload_digest=hashlib.sha1())
        state["sock"].send(request_head_bytes(todo.popleft(), headers))
        return True

    active = 0
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setblocking(False)
        state = {"sock": sock}
        selector.register(sock, selectors.EVENT_READ, state)
        active += start(state)
    while active:
        for key, _ in selector.select():
            state = key.data
            state["buffer"] += state["sock"].recv(65536)
            if state["response"] is None:
                if not (end := HEAD_END.search(state["buffer"])):
                    continue
                head = bytes(state["buffer"][:end.end()])
                del state["buffer"][:end.end()]
                state["response"] = http1.parse_head(head)
                state["head_digest"].update(head)
            length = int(state["response"].get_header("Content-Length") or 0)
            if len(state["buffer"]) >= length:
                body = bytes(state["buffer"][:length])
                state["head_digest"].update(body)
                state["payload_digest"].update(body)
                done += 1
                if not start(state):
                    selector.unregister(state["sock"])
                    state["sock"].close()
                    active -= 1
    return done


def measure(label: str, run) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    count = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<38} {count:>5} URLs  wall {wall:6.3f} s  CPU {cpu:6.3f} s  {1000 * cpu / count:5.3f} ms CPU/URL")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--articles", type=int, default=200)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fetch-models-"))
    build_site(work / "site", args.articles, 8)
    paths = site_paths(work / "site")
    init_archive(work / "archive", overrides={"concurrency": "8", "per_host_concurrency": "8"})  # as capture_vs_wget
    config = load_config(work / "archive" / "config.toml")
    with StaticServer(work / "site", work, "nginx", 1, 600) as server:
        host, port = server.base.split("//", 1)[1].rsplit(":", 1)
        urls = [server.base + path for path in paths]
        fetcher = Fetcher(config.capture)
        fetcher_threads(fetcher, urls[:50], 1)  # connections made, code warm
        measure("Fetcher, called from this thread", lambda: fetcher_inline(fetcher, urls))
        for concurrency in (1, 4, 8):
            measure(f"FetchPool, {concurrency} in flight", lambda: fetch_loop(fetcher, urls, concurrency))
        for threads in (1, 4, 8):
            measure(f"Fetcher, {threads} fetch thread(s)", lambda: fetcher_threads(fetcher, urls, threads))
        fetcher.close()
        for connections in (1, 4, 8):
            measure(f"non-blocking loop, {connections} connection(s)",
                    lambda: nonblocking_loop(host, int(port), paths, connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
