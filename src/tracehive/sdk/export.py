"""Send span batches to the server over OTLP/HTTP (protobuf), retrying on our own terms.

Why not OpenTelemetry's ``OTLPSpanExporter`` (checked against 1.45): it retries 429/502/503/504 and
connection errors only within one ``timeout`` (10 s) for the whole call, drops a batch whose
``Retry-After`` does not fit in what is left of it, treats 500 as final, and logs a warning per
attempt and an error per lost batch, on the application's stderr. Here:

* each attempt is cut after ``export_timeout`` (a server that holds the connection costs that much);
* connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter
  (``export_backoff_initial`` doubling up to ``export_backoff_max``, each wait drawn from its upper
  half) for up to ``export_max_retry_time`` per batch; the failure count carries over to the next
  batch until an attempt succeeds, so an outage is not hammered afresh by every batch;
* ``Retry-After`` (seconds or an HTTP date) is waited out in full (or the backoff, if longer),
  capped at ``export_retry_after_max``;
* a batch refused with 413 is split in halves and each half sent on its own;
* any other 4xx drops the batch at once: sending it again would get the same answer;
* every span is settled in the :class:`DeliveryLedger`; failed attempts are logged at DEBUG only.

Retries are safe: the server deduplicates events by span id. This runs on the batch processor's
thread (or a flush's), never on the application's.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracehive.privacy.otlp import redact_request
from tracehive.privacy.rules import Redactor
from tracehive.sdk.delivery import DeliveryLedger, reset_in_forked_child
from tracehive.sdk.settings import ExportSettings

logger = logging.getLogger("tracehive")

PROTOBUF = "application/x-protobuf"
# Transport failures worth another attempt; the rest (a bad URL or scheme) will not heal.
RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in (HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS)


def retry_after_seconds(value: str | None) -> float | None:
    """The wait a ``Retry-After`` header asks for (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one POST: delivered (no failure), or why not and whether another try may help."""

    status: int | None
    failure: str | None
    retryable: bool = False
    retry_after: float | None = None


class OtlpHttpExporter(SpanExporter):
    """POSTs each batch to ``endpoint`` until it is delivered, refused, or out of retry time."""

    def __init__(
        self, endpoint: str, headers: dict[str, str], settings: ExportSettings, ledger: DeliveryLedger
    ) -> None:
        self.endpoint = endpoint
        self.headers = {**headers, "Content-Type": PROTOBUF}
        self.settings = settings
        self.ledger = ledger
        self.redactor: Redactor | None = None  # HoneyHiveTracer.init(redact=...): applied before sending
        self._reset()
        reset_in_forked_child(self)

    def _reset(self) -> None:
        """Fresh state: at start, and in a forked child, which must not share the parent's sockets."""
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._stopping = threading.Event()
        self.failures = 0
        # Why the latest attempt could not reach the server (refused, timed out), or None when it got an answer.
        self.unreachable: str | None = None

    def stop(self) -> None:
        """From now on each batch gets one last attempt, with no waiting between attempts."""
        self._stopping.set()

    def shutdown(self) -> None:
        self.stop()
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            delivered = self._export(spans)
        except Exception:
            logger.debug("tracehive: export failed", exc_info=True)
            self.ledger.settle(len(spans), "export error")
            delivered = False
        return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE

    def _export(self, spans: Sequence[ReadableSpan]) -> bool:
        request = encode_spans(spans)
        if self.redactor is not None:
            redact_request(request, self.redactor)
        body = request.SerializePartialToString()
        attempt = self._deliver(body)
        if attempt.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE and len(spans) > 1:
            half = len(spans) // 2
            first = self._export(spans[:half])
            return self._export(spans[half:]) and first
        self.ledger.settle(len(spans), attempt.failure)
        return attempt.failure is None

    def _deliver(self, body: bytes) -> Attempt:
        """Attempts until one is final or the batch's retry time is spent."""
        give_up_at = time.monotonic() + self.settings.export_max_retry_time
        while True:
            attempt = self._post(body)
            if attempt.failure is None:
                self.failures = 0
                return attempt
            if not attempt.retryable or self._stopping.is_set():
                return attempt
            wait = min(self.next_wait(attempt.retry_after), give_up_at - time.monotonic())
            self.failures += 1
            if wait <= 0:
                return attempt
            logger.debug("tracehive: export to %s failed (%s); retry in %.2f s", self.endpoint, attempt.failure, wait)
            self._stopping.wait(wait)

    def next_wait(self, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt, given the failures so far."""
        settings = self.settings
        ceiling = min(settings.export_backoff_initial * 2 ** min(self.failures, 64), settings.export_backoff_max)
        backoff = random.uniform(ceiling / 2, ceiling)
        if retry_after is None:
            return backoff
        return max(min(retry_after, settings.export_retry_after_max), backoff)

    def _post(self, body: bytes) -> Attempt:
        try:
            response = self._http().post(self.endpoint, content=body, headers=self.headers)
        except RETRYABLE_ERRORS as exc:
            self.unreachable = type(exc).__name__
            return Attempt(None, f"server unreachable: {type(exc).__name__}", retryable=True)
        except httpx.HTTPError as exc:
            return Attempt(None, f"cannot send: {type(exc).__name__}")
        self.unreachable = None
        status = response.status_code
        if 200 <= status < 300:
            return Attempt(status, None)
        if is_retryable_status(status):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            return Attempt(status, f"server answered HTTP {status}", retryable=True, retry_after=wait)
        return Attempt(status, f"server refused them with HTTP {status}")

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.settings.export_timeout))
            return self._client
