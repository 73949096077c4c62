"""The tracehive SDK: HoneyHive's tracing API, sending OTLP spans to a tracehive server.

Moving code from HoneyHive means changing ``from honeyhive import ...`` to
``from tracehive import ...``; names, arguments and defaults match.
"""

from tracehive.sdk.decorators import atrace, trace
from tracehive.sdk.tracer import HoneyHiveTracer, enrich_session, enrich_span, flush

__all__ = ["HoneyHiveTracer", "atrace", "enrich_session", "enrich_span", "flush", "trace"]
