"""The export pipelines: one TracerProvider + batch processor + OTLP exporter per (endpoint, key).

Every tracer (session) in the process that talks to the same server with the same key shares one
pipeline, so a process with many sessions still has one export thread and one capped queue. The
global OpenTelemetry tracer provider is never touched: the application's own OTel setup stays its
own. Nothing here may hang or break the program: flushes run under a deadline, the exit flush is
bounded, and spans the server never got are counted (see :mod:`tracehive.sdk.delivery`). Timings
and sizes come from ``TRACEHIVE_*`` environment variables (see :mod:`tracehive.sdk.settings`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from tracehive.sdk.delivery import CappedBatchProcessor, DeliveryLedger, SettledExporter
from tracehive.sdk.export import OtlpHttpExporter
from tracehive.sdk.settings import ExportSettings

logger = logging.getLogger("tracehive")

TRACES_PATH = "/v1/traces"
CLOSE_TIMEOUT_S = 0.2
DEFAULT_FLUSH_TIMEOUT_S = 30.0
# A flush given no timeout (so the default) stops waiting this long into the flush if the server
# cannot be reached (connections refused or timing out): the spans stay queued and the export
# thread keeps trying. A server that answers, even with errors, is waited for up to the timeout.
UNREACHABLE_FLUSH_S = 2.0
GIVE_UP_POLL_S = 0.05


class Pipeline:
    """A private TracerProvider whose spans go through one capped batch processor to one exporter."""

    def __init__(self, exporter: OtlpHttpExporter | SettledExporter, settings: ExportSettings) -> None:
        self.exporter = exporter
        self.ledger = exporter.ledger
        self.settings = settings
        self.processor = CappedBatchProcessor(exporter, self.ledger, settings)
        self.provider = TracerProvider(resource=Resource.create(), sampler=ALWAYS_ON, shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.tracer: trace.Tracer = self.provider.get_tracer("tracehive.sdk")

    def flush(self, timeout: float) -> bool:
        """Export what is queued; True if all of it was delivered within ``timeout`` seconds."""
        return _flush([self], timeout)


def _flush(pipelines: list[Pipeline], timeout: float) -> bool:
    """True if every queued span of ``pipelines`` was delivered, none dropped, within ``timeout``.

    A timeout equal to the default is taken as none given (the callers pass the default on): then
    a server that cannot be reached ends the wait after UNREACHABLE_FLUSH_S, with one warning."""
    dropped_before = sum(p.ledger.total_dropped() for p in pipelines)
    started = time.monotonic()

    def work() -> bool:
        return all([p.processor.force_flush() for p in pipelines])

    def unreachable() -> str | None:
        """Why a server cannot be reached, once the flush has waited UNREACHABLE_FLUSH_S for it."""
        if time.monotonic() - started < UNREACHABLE_FLUSH_S:
            return None
        return next((p.exporter.unreachable for p in pipelines if p.exporter.unreachable), None)

    if timeout != DEFAULT_FLUSH_TIMEOUT_S:
        return run_with_deadline(work, timeout) and sum(p.ledger.total_dropped() for p in pipelines) == dropped_before
    finished = run_with_deadline(work, timeout, give_up=lambda: unreachable() is not None)
    why = None if finished else unreachable()
    if why is not None:
        where = ", ".join(p.ledger.destination for p in pipelines if p.exporter.unreachable)
        queued = sum(p.ledger.pending for p in pipelines)
        waited = time.monotonic() - started
        logger.warning(
            "tracehive: flush stopped waiting after %.1f s: cannot reach %s (%s); %d spans stay queued and are "
            "sent when it is back", waited, where, why, queued
        )  # fmt: skip
    return finished and sum(p.ledger.total_dropped() for p in pipelines) == dropped_before


def run_with_deadline(work: Callable[[], object], timeout: float, give_up: Callable[[], bool] | None = None) -> bool:
    """Run ``work`` on a daemon thread and wait at most ``timeout`` seconds for it, or until
    ``give_up()`` says to stop waiting (asked every few tens of milliseconds).

    OpenTelemetry's force_flush ignores its timeout and blocks for as long as the exporter retries,
    so the caller's deadline is enforced here instead.
    """
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(bool(work()))
        except Exception:
            logger.warning("tracehive: flush failed", exc_info=True)
            outcome.append(False)

    worker = threading.Thread(target=run, name="tracehive-flush", daemon=True)
    worker.start()
    deadline = time.monotonic() + max(timeout, 0.0)
    if give_up is None:
        worker.join(max(timeout, 0.0))
    while give_up is not None and worker.is_alive() and time.monotonic() < deadline and not give_up():
        worker.join(min(GIVE_UP_POLL_S, max(deadline - time.monotonic(), 0.0)))
    return bool(outcome and outcome[0])


_lock = threading.Lock()
_pipelines: dict[tuple[str, str | None], Pipeline] = {}
_test_exporter: SpanExporter | None = None
_exit_hook_registered = False


def get_pipeline(server_url: str, api_key: str | None) -> Pipeline:
    """The shared pipeline for this server and key, created on first use."""
    global _exit_hook_registered
    endpoint = server_url.rstrip("/") + TRACES_PATH
    key = (endpoint, api_key)
    with _lock:
        pipeline = _pipelines.get(key)
        if pipeline is None:
            pipeline = _new_pipeline(endpoint, api_key)
            _pipelines[key] = pipeline
        if not _exit_hook_registered:
            atexit.register(flush_at_exit)
            _exit_hook_registered = True
    return pipeline


def _new_pipeline(endpoint: str, api_key: str | None) -> Pipeline:
    settings = ExportSettings.from_env()
    ledger = DeliveryLedger(settings.max_queue_size, endpoint)
    if _test_exporter is not None:
        return Pipeline(SettledExporter(_test_exporter, ledger), settings)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return Pipeline(OtlpHttpExporter(endpoint, headers, settings, ledger), settings)


def flush_all(timeout: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
    """Flush every pipeline of the process within ``timeout`` seconds in total."""
    with _lock:
        pipelines = list(_pipelines.values())
    return _flush(pipelines, timeout)


def flush_at_exit() -> None:
    """Give queued spans one bounded last chance to leave, then report what never did.

    The exporters stop waiting between attempts first: a server that is down now will not be back
    within the exit flush's few seconds, and exit must not hang.
    """
    with _lock:
        pipelines = list(_pipelines.values())
    for pipeline in pipelines:
        pipeline.exporter.stop()
    _flush(pipelines, max((p.settings.exit_flush_timeout for p in pipelines), default=0.0))
    _close(pipelines)
    for pipeline in pipelines:
        pipeline.ledger.summarise()


def use_exporter(exporter: SpanExporter | None) -> None:
    """Test hook: build pipelines from now on around ``exporter`` (None: the real OTLP exporter).

    Existing pipelines are closed and forgotten, so tracers created afterwards get fresh ones.
    """
    global _test_exporter
    with _lock:
        old = list(_pipelines.values())
        _pipelines.clear()
        _test_exporter = exporter
    _close(old)


def _close(pipelines: list[Pipeline]) -> None:
    """Stop the export threads, waiting at most CLOSE_TIMEOUT_S (a processor's shutdown may take 30 s)."""
    for pipeline in pipelines:
        pipeline.exporter.stop()
    run_with_deadline(lambda: [p.processor.shutdown() for p in pipelines], CLOSE_TIMEOUT_S)


def _reinit_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_after_fork)
