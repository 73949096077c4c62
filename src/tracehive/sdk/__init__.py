"""The tracehive SDK: HoneyHive's tracing API, sending OTLP spans to a tracehive server.

Moving code from HoneyHive means changing ``from honeyhive import ...`` to
``from tracehive import ...``; names, arguments and defaults match.
"""

from tracehive.sdk.decorators import atrace, trace, trace_class
from tracehive.sdk.functions import enrich_session, enrich_span, flush, set_default_tracer
from tracehive.sdk.tracer import HoneyHiveTracer

__all__ = [
    "HoneyHiveTracer",
    "atrace",
    "enrich_session",
    "enrich_span",
    "flush",
    "set_default_tracer",
    "trace",
    "trace_class",
]
