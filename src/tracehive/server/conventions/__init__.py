"""The attribute conventions tracehive reads, one module each, in order of precedence.

Where two conventions name the same target (a field, a namespace path), the first in
:data:`CONVENTIONS` that holds a non-empty value wins: ours, then HoneyHive's, then OpenInference,
OpenTelemetry GenAI, OpenLLMetry, Langfuse and MLflow. Within a convention, rows listed first win.
Each module's table is its documentation (``docs/llm-calls.md`` prints them);
:mod:`tracehive.server.mapping` compiles them into one plan per set of attribute keys.
"""

from __future__ import annotations

from tracehive.server.conventions import genai, honeyhive, langfuse, mlflow, openinference, openllmetry, ours
from tracehive.server.conventions.base import Convention

CONVENTIONS: tuple[Convention, ...] = (
    ours.CONVENTION,
    honeyhive.CONVENTION,
    openinference.CONVENTION,
    genai.CONVENTION,
    openllmetry.CONVENTION,
    langfuse.CONVENTION,
    mlflow.CONVENTION,
)
