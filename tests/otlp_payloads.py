"""Build OTLP trace requests by hand, in both encodings, for ingest tests."""

from __future__ import annotations

import secrets
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return out
    return AnyValue(string_value=str(value))


def json_value(value: Any) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [json_value(v) for v in value]}}
    return {"stringValue": str(value)}


def protobuf_request(spans: list[dict], resource: dict | None = None) -> bytes:
    """``spans``: dicts with trace_id (32 hex), span_id (16 hex), parent_id, name, attributes, error."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {}).items():
        resource_spans.resource.attributes.append(KeyValue(key=key, value=any_value(value)))
    scope = resource_spans.scope_spans.add()
    now = time.time_ns()
    for s in spans:
        span = Span(
            trace_id=bytes.fromhex(s["trace_id"]),
            span_id=bytes.fromhex(s["span_id"]),
            parent_span_id=bytes.fromhex(s["parent_id"]) if s.get("parent_id") else b"",
            name=s.get("name", "op"),
            start_time_unix_nano=s.get("start_ns", now),
            end_time_unix_nano=s.get("end_ns", now + 1_000_000),
        )
        for key, value in s.get("attributes", {}).items():
            span.attributes.append(KeyValue(key=key, value=any_value(value)))
        if s.get("error"):
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=s["error"]))
        scope.spans.append(span)
    return request.SerializeToString()


def json_request(spans: list[dict], resource: dict | None = None) -> dict:
    now = time.time_ns()
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": k, "value": json_value(v)} for k, v in (resource or {}).items()]},
                "scopeSpans": [
                    {
                        "scope": {"name": "tests"},
                        "spans": [
                            {
                                "traceId": s["trace_id"],
                                "spanId": s["span_id"],
                                "parentSpanId": s.get("parent_id"),
                                "name": s.get("name", "op"),
                                "kind": "SPAN_KIND_INTERNAL",
                                "startTimeUnixNano": str(s.get("start_ns", now)),
                                "endTimeUnixNano": str(s.get("end_ns", now + 1_000_000)),
                                "attributes": [
                                    {"key": k, "value": json_value(v)} for k, v in s.get("attributes", {}).items()
                                ],
                                "status": {"code": "STATUS_CODE_ERROR", "message": s["error"]}
                                if s.get("error")
                                else {},
                            }
                            for s in spans
                        ],
                    }
                ],
            }
        ]
    }


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)
