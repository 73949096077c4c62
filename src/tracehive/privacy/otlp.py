"""Redaction of an encoded OTLP request, the SDK's one step before a batch leaves the process
(``HoneyHiveTracer.init(..., redact=...)``): the same rules the server applies, on our namespace
attributes (``tracehive.<namespace>``, a JSON object each), and the patterns on the error text and
on every other string attribute but our own ids and names (instrumentors' prompts, for one)."""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehive import attributes as A
from tracehive.model import NAMESPACES
from tracehive.privacy.rules import Redactor, RuleError, parse_rules

_NAMESPACE_KEYS = {f"{A.NAMESPACE_PREFIX}{ns}": ns for ns in NAMESPACES}


def redactor_from(given: Any) -> Redactor:
    """``redact=`` as the SDK takes it: a list of rules, or ``{"rules": [...], "secret": "<hex>"}``
    to hash as the server would (the project's secret); without a secret, ``hash`` drops."""
    if isinstance(given, dict):
        secret = given.get("secret")
        if secret is not None and not isinstance(secret, str):
            raise RuleError("redact.secret: the project's secret as hex text")
        try:
            key = bytes.fromhex(secret) if secret else None
        except ValueError:
            raise RuleError("redact.secret: the project's secret as hex text") from None
        return Redactor(parse_rules(given.get("rules")), key)
    return Redactor(parse_rules(given), None)


def redact_request(request: ExportTraceServiceRequest, redactor: Redactor) -> None:
    """Apply ``redactor`` in place to every span of an encoded request."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for attribute in span.attributes:
                    value = attribute.value
                    if value.WhichOneof("value") != "string_value":
                        continue
                    ns = _NAMESPACE_KEYS.get(attribute.key)
                    if ns is not None:
                        value.string_value = _redacted_json(value.string_value, ns, redactor)
                    elif attribute.key == A.ERROR or not attribute.key.startswith(A.NAMESPACE_PREFIX):
                        value.string_value = redactor.redact_text(value.string_value)
                if span.status.message:
                    span.status.message = redactor.redact_text(span.status.message)


def _redacted_json(text: str, ns: str, redactor: Redactor) -> str:
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        return redactor.redact_text(text)
    if not isinstance(values, dict):
        return redactor.redact_text(text)
    namespaces = {ns: values}
    redactor.apply(namespaces)
    return orjson.dumps(namespaces[ns]).decode()
