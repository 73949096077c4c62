"""The capped queue and the count of every span: admitted, delivered or dropped, and why.

A span is admitted when it ends, if fewer than ``capacity`` spans are waiting or being sent; else it
is dropped on the spot, so memory stays bounded whatever the server does. An admitted span is
settled once: delivered, or dropped with a reason (the server refused it, retries ran out, the
program exited first). The first drop is reported in one warning line; later drops are only
counted, and the exit summary gives the totals. Nothing here ever raises into the program.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tracehive.sdk.settings import ExportSettings

if TYPE_CHECKING:
    from tracehive.sdk.export import OtlpHttpExporter

logger = logging.getLogger("tracehive")

QUEUE_FULL = "queue full"
UNSENT_AT_EXIT = "unsent at exit"


def reset_in_forked_child(owner: DeliveryLedger | OtlpHttpExporter) -> None:
    """Call ``owner._reset()`` in a child after ``os.fork``: the parent's locks and sockets are not its own."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(owner)

    def after_fork_in_child() -> None:
        alive = ref()
        if alive is not None:
            alive._reset()

    os.register_at_fork(after_in_child=after_fork_in_child)


class DeliveryLedger:
    """Counts of one pipeline's spans; thread-safe, and reset in a forked child (its queue is empty)."""

    def __init__(self, capacity: int, destination: str) -> None:
        self.capacity = capacity
        self.destination = destination
        self._reset()
        reset_in_forked_child(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self.pending = 0
        self.delivered = 0
        self.dropped: Counter[str] = Counter()
        self._warned = False

    def admit(self) -> bool:
        """Take one more span if the queue has room; else count it dropped."""
        with self._lock:
            if self.pending < self.capacity:
                self.pending += 1
                return True
        self.drop(1, QUEUE_FULL)
        return False

    def settle(self, count: int, failure: str | None = None) -> None:
        """``count`` admitted spans left the queue: delivered, or dropped because of ``failure``."""
        with self._lock:
            self.pending = max(self.pending - count, 0)
            if failure is None:
                self.delivered += count
        if failure is not None:
            self.drop(count, failure)

    def drop(self, count: int, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += count
            first = not self._warned
            self._warned = True
        if first:
            logger.warning(
                "tracehive: dropping spans for %s (%s); further drops are counted and summarised at exit",
                self.destination,
                reason,
            )

    def total_dropped(self) -> int:
        with self._lock:
            return sum(self.dropped.values())

    def summarise(self) -> None:
        """At exit: one warning line with every span that never reached the server, if any."""
        with self._lock:
            lost = Counter(self.dropped)
            if self.pending:
                lost[UNSENT_AT_EXIT] += self.pending
        if lost:
            details = ", ".join(f"{count} {reason}" for reason, count in lost.most_common())
            logger.warning(
                "tracehive: %d spans were not delivered to %s: %s", sum(lost.values()), self.destination, details
            )


class CappedBatchProcessor(BatchSpanProcessor):
    """OpenTelemetry's batch processor (its thread, batching and fork handling) behind our admission.

    Its own queue never overflows (it would drop silently and log a line per span): the ledger
    admits at most ``max_queue_size`` spans, counting those already taken out for sending.
    """

    def __init__(self, exporter: SpanExporter, ledger: DeliveryLedger, settings: ExportSettings) -> None:
        super().__init__(
            exporter,
            max_queue_size=ledger.capacity,
            schedule_delay_millis=settings.schedule_delay * 1000,
            max_export_batch_size=min(settings.max_batch_size, ledger.capacity),
            export_timeout_millis=settings.export_timeout * 1000,
        )
        self.ledger = ledger

    def on_end(self, span: ReadableSpan) -> None:
        if self.ledger.admit():
            super().on_end(span)


class SettledExporter(SpanExporter):
    """Settles the batches of an exporter that knows nothing of the ledger (tests use an in-memory one)."""

    def __init__(self, exporter: SpanExporter, ledger: DeliveryLedger) -> None:
        self.exporter = exporter
        self.ledger = ledger

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.exporter.export(spans)
        except Exception:
            logger.debug("tracehive: exporter failed", exc_info=True)
            result = SpanExportResult.FAILURE
        self.ledger.settle(len(spans), None if result is SpanExportResult.SUCCESS else "export failed")
        return result

    unreachable: str | None = None  # the wrapped exporter does not say

    def stop(self) -> None:
        """Nothing to stop: the wrapped exporter does not retry."""

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
