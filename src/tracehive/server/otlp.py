"""Decode OTLP/HTTP trace requests, protobuf or JSON, into plain :class:`Span` records.

Both encodings end in the same shape so that everything after decoding (mapping spans onto
sessions and events) is written once. OTLP JSON differs from protobuf's canonical JSON mapping:
ids are hex, not base64, and enums may be numbers or names; this decoder follows OTLP.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

STATUS_ERROR = 2
INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)


class OtlpError(ValueError):
    """The request body is not a valid OTLP trace export; the message names what is wrong."""


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int = 0
    status_message: str = ""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


# --- protobuf ---------------------------------------------------------------------------------


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _pb_attributes(attributes) -> dict[str, Any]:
    out = {}
    for kv in attributes:
        value = kv.value
        # Most attributes are strings: read those without the general dispatch.
        out[kv.key] = value.string_value if value.WhichOneof("value") == "string_value" else _pb_value(value)
    return out


def decode_protobuf(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"body is not a valid OTLP protobuf ExportTraceServiceRequest: {exc}") from None
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id, span_id, status, events = span.trace_id, span.span_id, span.status, span.events
                if len(trace_id) != 16 or len(span_id) != 8:
                    raise OtlpError("span.trace_id must be 16 bytes and span.span_id 8 bytes")
                spans.append(
                    Span(
                        trace_id=trace_id.hex(),
                        span_id=span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_pb_attributes(span.attributes),
                        resource=resource,
                        status_code=status.code,
                        status_message=status.message,
                        events=[(e.name, _pb_attributes(e.attributes)) for e in events] if events else [],
                    )
                )
    return spans


# --- JSON -------------------------------------------------------------------------------------

_JSON_STATUS = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _json_value(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise OtlpError(f"{where}: an AnyValue must be an object")
    if not value:
        return None
    if len(value) != 1:
        raise OtlpError(f"{where}: an AnyValue must have exactly one field, got {sorted(value)}")
    ((kind, inner),) = value.items()
    if kind == "stringValue":
        return _typed(inner, str, where)
    if kind == "boolValue":
        return _typed(inner, bool, where)
    if kind == "intValue":
        return _int(inner, where, INT64)
    if kind == "doubleValue":
        if isinstance(inner, bool) or not isinstance(inner, int | float | str):
            raise OtlpError(f"{where}.doubleValue must be a number")
        try:
            return float(inner)
        except ValueError:
            raise OtlpError(f"{where}.doubleValue must be a number") from None
    if kind == "arrayValue":
        values = _typed(inner, dict, where).get("values") or []
        return [_json_value(v, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(_list(values, where))]
    if kind == "kvlistValue":
        return _json_attributes(_typed(inner, dict, where).get("values"), f"{where}.kvlistValue")
    if kind == "bytesValue":
        return _typed(inner, str, where)
    raise OtlpError(f"{where}: unknown AnyValue field {kind!r}")


def _typed(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise OtlpError(f"{where} must be a {kind.__name__}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{where} must be a list")
    return value


def _int(value: Any, where: str, bounds: tuple[int, int] = UINT64) -> int:
    if isinstance(value, bool):
        raise OtlpError(f"{where} must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise OtlpError(f"{where} must be an integer") from None
    if not bounds[0] <= number <= bounds[1]:
        raise OtlpError(f"{where} is out of range for OTLP ({bounds[0]}..{bounds[1]})")
    return number


def _json_attributes(attributes: Any, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(_list(attributes, where)):
        here = f"{where}[{i}]"
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise OtlpError(f"{here} must be an object with a string 'key'")
        out[kv["key"]] = _json_value(kv.get("value") or {}, f"{here}.value")
    return out


def _json_id(value: Any, size: int, where: str, required: bool) -> str | None:
    if value in (None, ""):
        if required:
            raise OtlpError(f"{where} is required")
        return None
    if not isinstance(value, str) or len(value) != size * 2:
        raise OtlpError(f"{where} must be {size * 2} hex characters")
    try:
        binascii.unhexlify(value)
    except binascii.Error:
        raise OtlpError(f"{where} must be {size * 2} hex characters") from None
    return value.lower()


def _json_status(status: Any, where: str) -> tuple[int, str]:
    if not status:
        return 0, ""
    status = _typed(status, dict, where)
    code = status.get("code", 0)
    code = _JSON_STATUS.get(code, code) if isinstance(code, str) else code
    message = status.get("message") or ""
    return _int(code, f"{where}.code"), _typed(message, str, f"{where}.message")


def _json_span(span: Any, resource: dict[str, Any], where: str) -> Span:
    span = _typed(span, dict, where)
    code, message = _json_status(span.get("status"), f"{where}.status")
    events = [
        (
            str(_typed(e, dict, f"{where}.events[{i}]").get("name") or ""),
            _json_attributes(e.get("attributes"), f"{where}.events[{i}].attributes"),
        )
        for i, e in enumerate(_list(span.get("events"), f"{where}.events"))
    ]
    return Span(
        trace_id=_json_id(span.get("traceId"), 16, f"{where}.traceId", True) or "",
        span_id=_json_id(span.get("spanId"), 8, f"{where}.spanId", True) or "",
        parent_id=_json_id(span.get("parentSpanId"), 8, f"{where}.parentSpanId", False),
        name=_typed(span.get("name") or "", str, f"{where}.name"),
        start_ns=_int(span.get("startTimeUnixNano", 0), f"{where}.startTimeUnixNano"),
        end_ns=_int(span.get("endTimeUnixNano", 0), f"{where}.endTimeUnixNano"),
        attributes=_json_attributes(span.get("attributes"), f"{where}.attributes"),
        resource=resource,
        status_code=code,
        status_message=message,
        events=events,
    )


def decode_json(body: bytes) -> list[Span]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpError("body must be a JSON object with 'resourceSpans'")
    try:
        return _json_document(document)
    except RecursionError:
        raise OtlpError("body is nested too deeply") from None


def _json_document(document: dict) -> list[Span]:
    spans: list[Span] = []
    for r, resource_spans in enumerate(_list(document.get("resourceSpans"), "resourceSpans")):
        where = f"resourceSpans[{r}]"
        resource_spans = _typed(resource_spans, dict, where)
        resource_doc = _typed(resource_spans.get("resource") or {}, dict, f"{where}.resource")
        resource = _json_attributes(resource_doc.get("attributes"), f"{where}.resource.attributes")
        for s, scope_spans in enumerate(_list(resource_spans.get("scopeSpans"), f"{where}.scopeSpans")):
            scope_where = f"{where}.scopeSpans[{s}]"
            scope_spans = _typed(scope_spans, dict, scope_where)
            for i, span in enumerate(_list(scope_spans.get("spans"), f"{scope_where}.spans")):
                spans.append(_json_span(span, resource, f"{scope_where}.spans[{i}]"))
    return spans
