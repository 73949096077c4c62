"""tracehive: self-hosted tracing for LLM applications.

The SDK's public API matches the HoneyHive SDK's names, so ``from honeyhive import ...`` becomes
``from tracehive import ...``.
"""

from tracehive.client import Client
from tracehive.sdk import (
    HoneyHiveTracer,
    atrace,
    enrich_session,
    enrich_span,
    flush,
    set_default_tracer,
    trace,
    trace_class,
)

__all__ = [
    "Client",
    "HoneyHiveTracer",
    "atrace",
    "enrich_session",
    "enrich_span",
    "flush",
    "set_default_tracer",
    "trace",
    "trace_class",
]
__version__ = "0.1.0"
