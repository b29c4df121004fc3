"""Fetches on worker threads, their results handed back to one thread."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, TypeVar

from archiver.capture.fetch import Exchange

J = TypeVar("J")


class FetchPool(Generic[J]):
    """Fetches on worker threads (requests blocks), at most ``workers`` at once; what they
    return is handed back to the crawl thread through one queue, which wake-ups from other
    threads also go through."""

    def __init__(self, fetch: Callable[[J], Exchange], workers: int, cancel: Callable[[], None] = lambda: None):
        self.fetch, self.workers, self.cancel = fetch, max(1, workers), cancel
        self.jobs: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[tuple[J, Exchange | BaseException] | None] = queue.SimpleQueue()
        self.in_flight: dict[int, J] = {}  # by id(job): submitted and not yet handed back
        self.threads: list[threading.Thread] = []

    def wake(self) -> None:
        """From any thread: end the current wait."""
        self.results.put(None)

    def submit(self, job: J) -> None:
        self.in_flight[id(job)] = job
        if len(self.threads) < min(self.workers, len(self.in_flight)):
            thread = threading.Thread(target=self._work, name=f"fetch-{len(self.threads)}", daemon=True)
            thread.start()
            self.threads.append(thread)
        self.jobs.put(job)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                outcome: Exchange | BaseException = self.fetch(job)
            except BaseException as e:  # noqa: BLE001 - a bug in a fetch: raised in the crawl thread
                outcome = e
            self.results.put((job, outcome))

    def wait(self, timeout: float | None) -> list[tuple[J, Exchange | BaseException]]:
        """What has finished: wait for the first result, a wake-up, or the timeout."""
        try:
            item = self.results.get(timeout=None if timeout is None else max(0.0, timeout))
        except queue.Empty:
            return []
        finished = []
        while True:
            if item is not None:
                job, outcome = item
                if self.in_flight.pop(id(job), None) is not None:
                    finished.append(item)
                elif isinstance(outcome, Exchange):  # abandoned meanwhile
                    outcome.close()
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                return finished

    def abandon(self) -> list[J]:
        """Give up the fetches in flight: those not started are dropped, those running
        are cut off (each ends at once, its result dropped); return their jobs."""
        jobs = list(self.in_flight.values())
        self.in_flight.clear()
        while True:
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                break
        self.cancel()
        self.wait(0)
        return jobs

    def close(self) -> None:
        self.abandon()
        for _ in self.threads:
            self.jobs.put(None)
        self.threads.clear()
