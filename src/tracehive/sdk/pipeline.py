"""The export pipelines: one TracerProvider + BatchSpanProcessor + OTLP exporter per (endpoint, key).

Every tracer (session) in the process that talks to the same server with the same key shares one
pipeline, so a process with many sessions still has one export thread and one queue. The global
OpenTelemetry tracer provider is never touched: the application's own OTel setup stays its own.
Nothing here may hang the program: flushes run under a deadline and the exit flush is bounded.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

logger = logging.getLogger("tracehive")

TRACES_PATH = "/v1/traces"
# One export attempt (with the exporter's own retries) gives up after this many seconds.
EXPORT_TIMEOUT_S = 5.0
EXIT_FLUSH_TIMEOUT_S = 2.0
CLOSE_TIMEOUT_S = 0.2
DEFAULT_FLUSH_TIMEOUT_S = 30.0
MAX_QUEUE_SIZE = 8192
MAX_BATCH_SIZE = 512
SCHEDULE_DELAY_MS = 1000


class Pipeline:
    """A private TracerProvider whose spans go through one batch processor to one exporter."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.processor = BatchSpanProcessor(
            exporter,
            max_queue_size=MAX_QUEUE_SIZE,
            schedule_delay_millis=SCHEDULE_DELAY_MS,
            max_export_batch_size=MAX_BATCH_SIZE,
            export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
        )
        self.provider = TracerProvider(resource=Resource.create(), sampler=ALWAYS_ON, shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.tracer: trace.Tracer = self.provider.get_tracer("tracehive.sdk")

    def flush(self, timeout: float) -> bool:
        """Export what is queued; False if that did not finish within ``timeout`` seconds."""
        return run_with_deadline(self.processor.force_flush, timeout)


def run_with_deadline(work: Callable[[], object], timeout: float) -> bool:
    """Run ``work`` on a daemon thread and wait at most ``timeout`` seconds for it.

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
    worker.join(max(timeout, 0.0))
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
            pipeline = Pipeline(_test_exporter or _otlp_exporter(endpoint, api_key))
            _pipelines[key] = pipeline
        if not _exit_hook_registered:
            atexit.register(flush_at_exit)
            _exit_hook_registered = True
    return pipeline


def _otlp_exporter(endpoint: str, api_key: str | None) -> SpanExporter:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=EXPORT_TIMEOUT_S)


def flush_all(timeout: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
    """Flush every pipeline of the process within ``timeout`` seconds in total."""
    with _lock:
        pipelines = list(_pipelines.values())
    return run_with_deadline(lambda: all([p.processor.force_flush() for p in pipelines]), timeout)


def flush_at_exit() -> None:
    """Give queued spans a short, bounded chance to leave, then stop: exit never hangs."""
    flush_all(EXIT_FLUSH_TIMEOUT_S)
    with _lock:
        pipelines = list(_pipelines.values())
    _close(pipelines)


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
    run_with_deadline(lambda: [p.processor.shutdown() for p in pipelines], CLOSE_TIMEOUT_S)


def _reinit_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_after_fork)
