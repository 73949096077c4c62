"""The one place writes are batched: ingest requests queue their batches here and wait.

A request is answered only once its batch is durable. Without an ingest log (the ClickHouse
store) that means committed: a single thread drains the queue, merges what is waiting into one
store write (one transaction) and answers every waiting request. With an ingest log (the DuckDB
store, see :mod:`~tracehive.store.ingest_log`) it means synced to the log: one thread appends what
is waiting with one sync and answers those requests at once, and a second thread writes what has
gathered to the store in one transaction. Neither waits for anything when idle. Reads call
:meth:`BulkWriter.caught_up` first, so they see every batch acknowledged before they began.
Deletes (erase, retention) are tasks run on the thread that writes to the store, in queue order
(:meth:`BulkWriter.run`), so they never race a write and follow every batch acknowledged before.

The queue is bounded so that a server that cannot keep up says so (:class:`Overloaded`) instead of
growing without limit.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from tracehive.store.base import Store, StoreFullError, StoreOutOfMemory
from tracehive.store.columns import Rows
from tracehive.store.ingest_log import IngestLog

log = logging.getLogger(__name__)

_STOP = object()
_FULL_RETRY_SECONDS = 1.0
# With a log, a store transaction no longer holds up any answer, and it costs milliseconds however
# little it carries: the store thread lets batches gather this long, unless a read is waiting.
_GATHER_SECONDS = 0.02


class Overloaded(RuntimeError):
    """The write queue is full; the client should retry later."""


class _Task:
    """A function to run on the store's writing thread, with the future of its result."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.future: Future = Future()

    def run(self) -> None:
        try:
            self.future.set_result(self.fn())
        except BaseException as exc:
            self.future.set_exception(exc)


class _Taken:
    """What one :func:`_take` took: batches, or one task alone; a task met after batches is held
    for the next take."""

    def __init__(self) -> None:
        self.held: object = None

    def take(self, source: queue.SimpleQueue, limit: int, first: object = None) -> tuple[list, bool]:
        """Block for one item (unless given ``first`` or holding one), then take whatever else is
        waiting, up to ``limit`` items' worth. A task is taken alone: ``[task]``."""
        first, self.held = self.held or first or source.get(), None
        if first is _STOP:
            return [], True
        taken = [first]
        if isinstance(first, _Task):
            return taken, False
        size = len(first[0])
        while size < limit:
            try:
                item = source.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return taken, True
            if isinstance(item, _Task):
                self.held = item
                break
            taken.append(item)
            size += len(item[0])
        return taken, False


def _settle(future: Future, error: Exception | None = None) -> None:
    """Complete a future unless its waiter gave up on it (a client that hung up, a read that
    stopped waiting cancels it): the batch is durable all the same."""
    with contextlib.suppress(InvalidStateError):
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class BulkWriter:
    def __init__(
        self,
        store: Store,
        max_pending_items: int = 200_000,
        max_items_per_write: int = 50_000,
        ingest_log: IngestLog | None = None,
    ) -> None:
        self.store = store
        self.max_pending_items = max_pending_items
        self.max_items_per_write = max_items_per_write
        self._log = ingest_log
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending_items = 0
        self._pending_lock = threading.Lock()
        # Log positions: acknowledged (synced) and held by the store, and reads waiting for them.
        self._acked = self._applied = 0
        self._waiters: list[tuple[int, Future]] = []
        self._positions = threading.Lock()
        self._hurry = threading.Event()  # a read waits for the store: stop gathering
        if ingest_log is None:
            self._threads = [threading.Thread(target=self._run, name="tracehive-writer", daemon=True)]
        else:
            self._recover(ingest_log)
            self._applying: queue.SimpleQueue = queue.SimpleQueue()
            self._threads = [
                threading.Thread(target=self._run_log, name="tracehive-ingest-log", daemon=True),
                threading.Thread(target=self._run_apply, name="tracehive-writer", daemon=True),
            ]
        for thread in self._threads:
            thread.start()

    def submit(self, batch: Rows) -> Future:
        """Queue a batch; the future completes when it is durable (or with the error that kept it
        from being so)."""
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

    def caught_up(self) -> Future | None:
        """None when the store holds every acknowledged batch; else a future that completes once it
        holds those acknowledged so far."""
        with self._positions:
            target = self._acked
            if self._applied >= target:
                return None
            future: Future = Future()
            self._waiters.append((target, future))
        self._hurry.set()
        return future

    def run(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the thread that writes to the store, after every batch queued before it;
        the future completes with its result. With a log, the segments holding those batches are
        deleted once it has run, so that an erase leaves nothing of its data in the log."""
        task = _Task(fn)
        self._queue.put(task)
        return task.future

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(_STOP)
        self._hurry.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._log is not None:
            self._log.close(applied=None if any(t.is_alive() for t in self._threads) else self._applied)

    def _done(self, count: int) -> None:
        with self._pending_lock:
            self._pending_items -= count

    # --- without a log: commit, then answer ---------------------------------------------------
    def _run(self) -> None:
        stop, source = False, _Taken()
        while not stop:
            taken, stop = source.take(self._queue, self.max_items_per_write)
            if taken and isinstance(taken[0], _Task):
                taken[0].run()
            elif taken:
                try:
                    self._write(taken)
                finally:
                    self._done(sum(len(batch) for batch, _ in taken))

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

    # --- with a log: sync, answer, then commit what gathered ---------------------------------
    def _recover(self, ingest_log: IngestLog) -> None:
        """Write the records a crash left in the log but not in the store, before serving."""
        applied = self.store.log_position()
        batch: list[tuple[int, Rows]] = []
        items = 0
        for position, payload in ingest_log.unapplied(applied):
            rows = Rows.from_bytes(payload)
            batch.append((position, rows))
            items += len(rows)
            if items >= self.max_items_per_write:
                self._apply(batch)
                batch, items = [], 0
        if batch:
            self._apply(batch)
        self._acked = self._applied = max(ingest_log.last, applied)
        ingest_log.discard(self._applied)

    def _run_log(self) -> None:
        stop, source = False, _Taken()
        while not stop:
            taken, stop = source.take(self._queue, self.max_items_per_write)
            if taken and isinstance(taken[0], _Task):
                # Later records go to a new segment: once the task has run, every segment before
                # it is held by the store and can go.
                self._log.close()
                self._applying.put(taken[0])
            elif taken:
                self._append(taken)
        self._applying.put(_STOP)

    def _append(self, taken: list[tuple[Rows, Future]]) -> None:
        payloads, kept = [], []
        for rows, future in taken:
            try:
                payloads.append(rows.to_bytes())
                kept.append((rows, future))
            except Exception as exc:  # a value the log cannot hold fails its own request only
                log.warning("ingest log: cannot encode a batch: %s", exc)
                _settle(future, exc)
                self._done(len(rows))
        if not kept:
            return
        try:
            last = self._log.append(payloads)
        except Exception as exc:
            for _, future in kept:
                _settle(future, exc)
            self._done(sum(len(rows) for rows, _ in kept))
            return
        for position, (rows, _) in enumerate(kept, last - len(kept) + 1):
            self._applying.put((rows, position))
        with self._positions:  # after the store thread has them, before anyone hears back
            self._acked = last
        for _, future in kept:
            _settle(future)

    def _run_apply(self) -> None:
        stop, source = False, _Taken()
        while not stop:
            first = source.held or self._applying.get()
            if first is not _STOP and not isinstance(first, _Task):
                self._hurry.wait(_GATHER_SECONDS)
                self._hurry.clear()
            source.held = None
            taken, stop = source.take(self._applying, self.max_items_per_write, first)
            if taken and isinstance(taken[0], _Task):
                taken[0].run()
                self._log.discard(self._applied)
            elif taken:
                try:
                    self._apply([(position, rows) for rows, position in taken])
                finally:
                    self._done(sum(len(rows) for rows, _ in taken))

    def _apply(self, batch: list[tuple[int, Rows]]) -> None:
        """Write logged batches to the store with the position they end at. A full disk or a store
        out of memory is waited out (the batches are safe in the log); a batch the store refuses
        alone for any other reason is logged as an error and passed over, so that it cannot hold up
        every batch after it."""
        last = batch[-1][0]
        while True:
            try:
                self.store.write(Rows.concat([rows for _, rows in batch]), log_position=last)
                break
            except StoreFullError as exc:
                log.warning("store is full, retrying in %.0f s: %s", _FULL_RETRY_SECONDS, exc)
                time.sleep(_FULL_RETRY_SECONDS)
            except Exception as exc:
                if len(batch) > 1:  # one at a time: a smaller write may fit, and a bad record fails alone
                    for item in batch:
                        self._apply([item])
                    return
                if isinstance(exc, StoreOutOfMemory):  # queries may hold the memory for now
                    log.warning("store is out of memory, retrying in %.0f s: %s", _FULL_RETRY_SECONDS, exc)
                    time.sleep(_FULL_RETRY_SECONDS)
                    continue
                log.error("store refused ingest log record %d, passed over: %s", last, exc)
                try:
                    self.store.write(Rows.empty(), log_position=last)
                except Exception:
                    log.exception("cannot record passing over ingest log record %d", last)
                break
        self._log.discard(last)
        with self._positions:
            self._applied = last
            ready = [future for target, future in self._waiters if target <= last]
            self._waiters = [(target, future) for target, future in self._waiters if target > last]
        for future in ready:
            _settle(future)
