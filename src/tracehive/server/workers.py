"""Ingest's CPU work, turning a request body into store rows, on every core.

Decoding, checking and mapping spans is pure Python; under one interpreter lock it would keep a
single core busy while the others wait. A pool of worker processes does it instead, and the server
process keeps what must stay in one place: HTTP and the single writer. Workers are started fresh
(``spawn``: forking a process that runs threads is unsafe) and exit on their own when the server
dies, however it dies. With no workers the work runs on a thread.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa

from tracehive.privacy import Redactor
from tracehive.privacy.records import redact_batch
from tracehive.server.limits import Limits, check_spans, enforce_batch
from tracehive.server.mapping import spans_to_batch
from tracehive.server.otlp import decode_json, decode_protobuf
from tracehive.server.prices import Prices
from tracehive.store.columns import Rows

PROTOBUF = "application/x-protobuf"
# A body this small (about ten spans) is mapped in about a millisecond, less than handing it to a
# worker process and taking its rows back costs, so it is mapped on the event loop (bench/RESULTS.md).
INLINE_BODY_BYTES = 8192
JSON = "application/json"


def default_ingest_workers() -> int:
    """One worker per core but one, which the server process keeps busy (HTTP, the ingest log and
    the writer); at least one, at most four (past that the single writer is the limit). On two
    cores a second worker added 14% to 500-span requests and 150 MB (bench/RESULTS.md)."""
    return max(1, min((os.cpu_count() or 1) - 1, 4))


def use_system_allocator() -> None:
    """Arrow's own allocator keeps freed memory for reuse; the C library's gives it back. In the
    server and each worker that took 40 MB off the peak at the same speed (bench/RESULTS.md)."""
    pa.set_memory_pool(pa.system_memory_pool())


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory) while holding a request; it is replaced."""


def prepare(
    content_type: str,
    body: bytes,
    default_project: str,
    limits: Limits,
    prices: Prices | None = None,
    redactors: Mapping[str, Redactor] | None = None,
) -> Rows:
    """Decode, check, map and redact one request body (raises OtlpError with what is wrong).
    ``redactors``, each project's rules as they are when the request arrived, come with every
    request, so a worker applies a rule from the moment it is saved."""
    spans = decode_protobuf(body) if content_type == PROTOBUF else decode_json(body)
    check_spans(spans, limits)
    batch = spans_to_batch(spans, default_project, prices)
    redact_batch(batch, redactors)
    enforce_batch(batch, limits)
    return Rows.of(batch)


def _start_worker(parent: int) -> None:
    """In a worker, as it starts: exit once the server is gone (killed with -9, a worker is adopted
    by another process and would otherwise wait for work forever)."""
    use_system_allocator()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="tracehive-parent-watch", daemon=True).start()


def _ready() -> None:
    """Run once per worker as the pool starts, so that every worker is up after the first request."""


class IngestWorkers:
    """The pool starts with the first ingest request: a server that only answers queries never
    pays for the workers (about 80 MB each, mostly pyarrow). Until every worker is up (a second or
    so of imports) requests are handled on a thread, so none waits for a process to start."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pool: ProcessPoolExecutor | None = None
        self._starting: list[Future] = []

    def _ready_pool(self) -> ProcessPoolExecutor | None:
        """The pool once all its workers are up; None (after starting it, if need be) before."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.count, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
            )
            self._starting = [self._pool.submit(_ready) for _ in range(self.count)]
        return self._pool if all(f.done() for f in self._starting) else None

    async def prepare(
        self,
        content_type: str,
        body: bytes,
        default_project: str,
        limits: Limits,
        prices: Prices | None = None,
        redactors: Mapping[str, Redactor] | None = None,
    ) -> Rows:
        args = (content_type, body, default_project, limits, prices, redactors)
        if len(body) <= INLINE_BODY_BYTES:
            return prepare(*args)
        pool = self._ready_pool() if self.count else None
        if pool is None:
            return await asyncio.to_thread(prepare, *args)
        try:
            return await asyncio.wrap_future(pool.submit(prepare, *args))
        except BrokenProcessPool:
            if self._pool is pool:  # the first request to notice replaces the pool
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerLost("an ingest worker stopped") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
