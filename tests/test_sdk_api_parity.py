"""Our tracing API against honeyhive 1.7.0's, by ``inspect.signature``: code moves by changing an import.

The signatures are read inside the honeyhive venv and sent back as JSON. Every name there must exist
here; every parameter of theirs must exist here, at the same position if it can be passed by position,
with the same default if theirs has one. Their REST client and evaluation are out of scope.
"""

from __future__ import annotations

import inspect
import json
import subprocess
from typing import Any

import pytest
from opentelemetry import context as otel_context
from tests.honeyhive_sdk import honeyhive_python

import tracehive
from tracehive import HoneyHiveTracer
from tracehive.sdk import sessions

FUNCTIONS = ("trace", "atrace", "trace_class", "enrich_session", "enrich_span", "flush", "set_default_tracer")
# Instance attributes of their tracer that belong to the REST client or to evaluation runs.
OUT_OF_SCOPE = {"client", "config", "is_evaluation", "run_id", "dataset_id", "datapoint_id"}

INSPECT = """
import inspect, json, logging, sys
import honeyhive
from honeyhive import HoneyHiveTracer

NO_DEFAULT = {"none": True}

def default(value):
    if value is inspect.Parameter.empty:
        return NO_DEFAULT
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)

def describe(func):
    return [[p.name, p.kind.name, default(p.default)] for p in inspect.signature(func).parameters.values()]

functions = {name: describe(getattr(honeyhive, name)) for name in %(functions)r}
methods, properties = {}, []
for name, member in inspect.getmembers(HoneyHiveTracer):
    if name.startswith("_"):
        continue
    if isinstance(member, property):
        properties.append(name)
    elif callable(member):
        methods[name] = describe(member)
logging.disable(logging.CRITICAL)
instance = HoneyHiveTracer.init(api_key="k", project="p", test_mode=True, server_url="http://127.0.0.1:9")
attributes = sorted(k for k in vars(instance) if not k.startswith("_"))
print(json.dumps({"functions": functions, "methods": methods, "properties": properties, "attributes": attributes}))
"""


@pytest.fixture(scope="module")
def theirs() -> dict[str, Any]:
    python = honeyhive_python()
    done = subprocess.run(
        [str(python), "-c", INSPECT % {"functions": FUNCTIONS}], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def mismatches(name: str, their_params: list, ours: Any) -> list[str]:
    """What a call written for their signature would find different in ours."""
    params = [p for p in inspect.signature(ours).parameters.values() if p.name not in ("self", "cls")]
    by_name = {p.name: p for p in params}
    problems = []
    their_params = [p for p in their_params if p[0] not in ("self", "cls")]
    for index, (param, kind, default) in enumerate(their_params):
        mine = by_name.get(param)
        if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            if not any(p.kind.name == kind for p in params):
                problems.append(f"{name}: no {kind} ({param})")
            continue
        if mine is None:
            problems.append(f"{name}: missing parameter {param}")
            continue
        if kind in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD") and (
            index >= len(params) or params[index].name != param
        ):
            problems.append(f"{name}: {param} is not positional argument {index}")
        if default != {"none": True}:
            if mine.default is inspect.Parameter.empty:
                problems.append(f"{name}: {param} has no default (theirs {default!r})")
            elif mine.default != default and repr(mine.default) != default:
                problems.append(f"{name}: {param} defaults to {mine.default!r}, theirs to {default!r}")
    return problems


def test_module_functions_match(theirs: dict[str, Any]) -> None:
    problems = []
    for name, params in theirs["functions"].items():
        ours = getattr(tracehive, name, None)
        if ours is None:
            problems.append(f"missing function {name}")
        else:
            problems += mismatches(name, params, ours)
    assert problems == []
    assert set(FUNCTIONS) <= set(tracehive.__all__)


def test_tracer_methods_properties_and_attributes_match(theirs: dict[str, Any]) -> None:
    problems = []
    for name, params in theirs["methods"].items():
        ours = getattr(HoneyHiveTracer, name, None)
        if ours is None or not callable(ours):
            problems.append(f"missing method HoneyHiveTracer.{name}")
        else:
            problems += mismatches(f"HoneyHiveTracer.{name}", params, ours)
    token = otel_context.attach(otel_context.Context())  # its session stays in this test
    try:
        tracer = HoneyHiveTracer.init(api_key="k", project="p", test_mode=True, server_url="http://127.0.0.1:9")
    finally:
        otel_context.detach(token)
        sessions.set_default(None)
    for name in theirs["properties"]:
        if not isinstance(inspect.getattr_static(HoneyHiveTracer, name, None), property):
            problems.append(f"missing property HoneyHiveTracer.{name}")
    for name in set(theirs["attributes"]) - OUT_OF_SCOPE:
        if not hasattr(tracer, name):
            problems.append(f"missing attribute tracer.{name}")
    assert problems == []
    # The attribute names are there; so are their kinds of values.
    assert tracer.session_id and tracer.project == tracer.project_name == "p" and tracer.test_mode is True
    assert hasattr(tracer.provider, "get_tracer") and hasattr(tracer.propagator, "inject")
