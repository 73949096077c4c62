"""Carry the tracing context into threads started inside a traced call.

asyncio tasks copy context variables by themselves; threads do not, so a ``@trace`` function run
on a ``threading.Thread`` or a ``ThreadPoolExecutor`` would start a new root span instead of a
child, and outside the current session. :func:`install` wraps ``Thread.start`` and
``ThreadPoolExecutor.submit`` (and so ``map`` and ``loop.run_in_executor``) to capture the
OpenTelemetry context, only when it holds a session, and attach it around the work in the other
thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context

from tracehive.sdk.spans import SESSION_KEY

_installed = False
_install_lock = threading.Lock()
# Set while ThreadPoolExecutor.submit runs: the pool's own long-lived worker threads, started from
# inside submit, must not keep the context of whichever call happened to start them.
_in_submit = threading.local()


def _run_in(ctx: otel_context.Context, work: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    token = otel_context.attach(ctx)
    try:
        return work(*args, **kwargs)
    finally:
        otel_context.detach(token)


def _traced_context() -> otel_context.Context | None:
    ctx = otel_context.get_current()
    return ctx if ctx.get(SESSION_KEY) is not None else None


def install() -> None:
    """Patch ``Thread.start`` and ``ThreadPoolExecutor.submit`` once per process."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        original_start = threading.Thread.start
        original_submit = ThreadPoolExecutor.submit

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            ctx = None if getattr(_in_submit, "active", False) else _traced_context()
            if ctx is not None:
                # An instance attribute shadows run(), including a subclass's override.
                self.run = functools.partial(_run_in, ctx, self.run)  # type: ignore[method-assign]
            original_start(self)

        @functools.wraps(original_submit)
        def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            ctx = _traced_context()
            if ctx is not None:
                fn = functools.partial(_run_in, ctx, fn)
            _in_submit.active = True
            try:
                return original_submit(self, fn, *args, **kwargs)
            finally:
                _in_submit.active = False

        threading.Thread.start = start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
