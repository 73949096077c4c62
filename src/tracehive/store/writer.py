"""The one place writes are batched: ingest requests queue their batches here and wait.

A single thread drains the queue, merges what is waiting into one store write (one transaction),
then answers every waiting request. Requests are answered only after their data is committed. The
queue is bounded so that a server that cannot keep up says so (:class:`Overloaded`) instead of
growing without limit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from tracehive.store.base import Store
from tracehive.store.columns import Rows

log = logging.getLogger(__name__)

_STOP = object()


class Overloaded(RuntimeError):
    """The write queue is full; the client should retry later."""


class BulkWriter:
    def __init__(self, store: Store, max_pending_items: int = 200_000, max_items_per_write: int = 50_000) -> None:
        self.store = store
        self.max_pending_items = max_pending_items
        self.max_items_per_write = max_items_per_write
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._held: tuple | None = None  # a task taken while merging batches, run next
        self._pending_items = 0
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="tracehive-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Rows) -> Future:
        """Queue a batch; the future completes when it is durable (or with the store's error)."""
        future: Future = Future()
        if not batch:
            future.set_result(None)
            return future
        with self._pending_lock:
            # Memory stays bounded: past the cap, refuse (one batch alone is always taken).
            if self._pending_items and self._pending_items + len(batch) > self.max_pending_items:
                raise Overloaded(f"{self._pending_items} items are waiting to be written")
            self._pending_items += len(batch)
        self._queue.put((batch, future))
        return future

    def run(self, task: Callable[[], Any]) -> Future:
        """Run ``task`` on the writer thread, between writes: deletes (erase, retention) then never
        race the writer's transactions. The future completes with the task's result."""
        future: Future = Future()
        self._queue.put((task, future))
        return future

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _take(self) -> tuple[list[tuple[Rows, Future]], bool]:
        """Block for one item, then take whatever else is waiting, up to the size of one write.
        A task is taken alone."""
        first, self._held = self._held or self._queue.get(), None
        if first is _STOP:
            return [], True
        taken = [first]
        if callable(first[0]):
            return taken, False
        size = len(first[0])
        while size < self.max_items_per_write:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return taken, True
            if callable(item[0]):
                self._held = item
                break
            taken.append(item)
            size += len(item[0])
        return taken, False

    def _run(self) -> None:
        stop = False
        while not stop:
            taken, stop = self._take()
            if taken and callable(taken[0][0]):
                self._run_task(*taken[0])
            elif taken:
                self._write_all(taken)

    @staticmethod
    def _run_task(task: Callable[[], Any], future: Future) -> None:
        try:
            future.set_result(task())
        except BaseException as exc:
            future.set_exception(exc)

    def _write_all(self, taken: list[tuple[Rows, Future]]) -> None:
        try:
            self._write(taken)
        finally:
            with self._pending_lock:
                self._pending_items -= sum(len(batch) for batch, _ in taken)

    def _write(self, taken: list[tuple[Rows, Future]]) -> None:
        merged = Rows.concat([batch for batch, _ in taken])
        try:
            self.store.write(merged)
        except Exception as exc:
            if len(taken) > 1:
                # One bad batch must not fail the others: write them one by one.
                for item in taken:
                    self._write([item])
                return
            log.warning("store write failed: %s", exc)
            taken[0][1].set_exception(exc)
            return
        for _, future in taken:
            future.set_result(None)
