"""``@trace`` / ``@atrace``: one span per call of a function, coroutine or generator.

Tracing must never change what the function does: if anything in tracehive goes wrong the call
runs untraced, its exceptions pass through unchanged, and its value is returned as is. The per-call
path is kept short because it runs on every call of the application's hot functions.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from opentelemetry import context as otel_context

from tracehive import attributes as A
from tracehive.model import DEFAULT_EVENT_TYPE, EVENT_TYPES
from tracehive.sdk import sessions
from tracehive.sdk import tracer as tracer_module
from tracehive.sdk.serialize import dumps
from tracehive.sdk.sessions import Session
from tracehive.sdk.spans import SpanState, checked_namespaces

logger = logging.getLogger("tracehive")

# A generator's outputs are the items it yielded, up to this many.
MAX_YIELDED_ITEMS = 100
_SKIPPED_FIRST = ("self", "cls")
# Namespaces that can be given once, on the decorator, for every call.
_STATIC_NAMESPACES = ("metadata", "config", "metrics", "feedback", "user_properties")


class _Arguments:
    """Names a call's arguments like ``Signature.bind`` would, without its per-call cost."""

    __slots__ = ("keyword_names", "positional", "skip_first", "var_keyword", "var_positional")

    def __init__(self, func: Callable[..., Any]) -> None:
        params = list(inspect.signature(func).parameters.values())
        positional_kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self.positional = tuple(p.name for p in params if p.kind in positional_kinds)
        self.skip_first = self.positional[0] if self.positional[:1] in (("self",), ("cls",)) else None
        self.keyword_names = frozenset(p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        self.var_positional = next((p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
        self.var_keyword = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = dict(zip(self.positional, args, strict=False))
        if len(args) > len(self.positional):
            bound[self.var_positional or "args"] = list(args[len(self.positional) :])
        if kwargs:
            if self.var_keyword is None:
                bound.update(kwargs)
            else:
                extra = {k: v for k, v in kwargs.items() if k not in self.keyword_names}
                bound.update((k, v) for k, v in kwargs.items() if k in self.keyword_names)
                if extra:
                    bound[self.var_keyword] = extra
        if self.skip_first is not None:
            bound.pop(self.skip_first, None)
        return bound


class _Spec:
    """Everything about a decorated function that does not change between calls."""

    __slots__ = ("_cached", "arguments", "attributes", "name", "namespaces", "tracer", "warned")

    def __init__(
        self, func: Callable[..., Any], event_type: Any, event_name: Any, namespaces: dict[str, Any], tracer: Any
    ) -> None:
        if event_type is not None and (event_type not in EVENT_TYPES or event_type == "session"):
            logger.warning(
                "tracehive: unknown event_type %r for %s; using %r",
                event_type,
                getattr(func, "__qualname__", func),
                DEFAULT_EVENT_TYPE,
            )
            event_type = None
        if event_name is not None and not isinstance(event_name, str):
            logger.warning("tracehive: event_name must be a string, got %s; ignored", type(event_name).__name__)
            event_name = None
        if tracer is not None and not isinstance(tracer, tracer_module.HoneyHiveTracer):
            logger.warning("tracehive: tracer= must be a HoneyHiveTracer, got %s; ignored", type(tracer).__name__)
            tracer = None
        self.name = event_name or getattr(func, "__qualname__", None) or repr(func)
        self.attributes = {A.EVENT_TYPE: event_type or DEFAULT_EVENT_TYPE, A.EVENT_NAME: self.name}
        self.namespaces = checked_namespaces(namespaces, "trace") or None
        self.tracer = tracer
        self.warned = False
        # (session, its attributes merged with ours): one tuple, so threads never see a torn pair.
        self._cached: tuple[Any, dict[str, str]] = (None, {})
        try:
            self.arguments: _Arguments | None = _Arguments(func)
        except (TypeError, ValueError):
            self.arguments = None

    def base_attributes(self, session: Session) -> dict[str, str]:
        cached_session, attrs = self._cached
        if session is not cached_session:
            attrs = {**session.span_attributes, **self.attributes}
            self._cached = (session, attrs)
        return attrs

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanState | None:
        """Open the call's span; None (and the call runs untraced) if that is not possible."""
        try:
            parent = otel_context.get_current()
            session = sessions.resolve(parent, self.tracer)
            if session is None:
                if not self.warned:
                    self.warned = True
                    logger.warning("tracehive: %s called before HoneyHiveTracer.init; not traced", self.name)
                return None
            inputs = self.arguments.bind(args, kwargs) if self.arguments is not None else {"args": list(args), **kwargs}
            span = session.tracer.tracer.start_span(self.name, parent)
            return SpanState(
                span, session, self.base_attributes(session), self.namespaces, dumps(inputs) if inputs else None, parent
            )
        except Exception:
            logger.warning("tracehive: could not start a span for %s; not traced", self.name, exc_info=True)
            return None


def _wrap_function(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        state = spec.start(args, kwargs)
        if state is None:
            return func(*args, **kwargs)
        token = otel_context.attach(state.context)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            state.finish(None, exc)
            raise
        otel_context.detach(token)
        state.finish({"result": result})
        return result

    return traced


def _wrap_coroutine(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        state = spec.start(args, kwargs)
        if state is None:
            return await func(*args, **kwargs)
        token = otel_context.attach(state.context)
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            state.finish(None, exc)
            raise
        otel_context.detach(token)
        state.finish({"result": result})
        return result

    return traced


class _Yielded:
    """The items a generator yielded, kept up to :data:`MAX_YIELDED_ITEMS`."""

    __slots__ = ("count", "items")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.count = 0

    def add(self, item: Any) -> None:
        self.count += 1
        if self.count <= MAX_YIELDED_ITEMS:
            self.items.append(item)

    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {"result": self.items}
        if self.count > MAX_YIELDED_ITEMS:
            outputs["yielded"] = self.count
        return outputs


def _wrap_generator(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        state = spec.start(args, kwargs)
        if state is None:
            return (yield from func(*args, **kwargs))
        yielded = _Yielded()
        try:
            token = otel_context.attach(state.context)
            try:
                gen = func(*args, **kwargs)
            finally:
                otel_context.detach(token)
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                # The span is current only while the generator's own code runs.
                token = otel_context.attach(state.context)
                try:
                    item = gen.send(sent) if thrown is None else gen.throw(thrown)
                except StopIteration as stop:
                    state.finish(yielded.outputs())
                    return stop.value
                finally:
                    otel_context.detach(token)
                yielded.add(item)
                sent, thrown = None, None
                try:
                    sent = yield item
                except GeneratorExit:
                    gen.close()
                    state.finish(yielded.outputs())
                    raise
                except BaseException as exc:
                    thrown = exc
        except BaseException as exc:
            state.finish(yielded.outputs(), exc)
            raise

    return traced


def _wrap_async_generator(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    async def traced(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        state = spec.start(args, kwargs)
        agen = func(*args, **kwargs)
        if state is None:
            async for item in agen:
                yield item
            return
        yielded = _Yielded()
        try:
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                token = otel_context.attach(state.context)
                try:
                    item = await (agen.asend(sent) if thrown is None else agen.athrow(thrown))
                except StopAsyncIteration:
                    state.finish(yielded.outputs())
                    return
                finally:
                    otel_context.detach(token)
                yielded.add(item)
                sent, thrown = None, None
                try:
                    sent = yield item
                except GeneratorExit:
                    await agen.aclose()
                    state.finish(yielded.outputs())
                    raise
                except BaseException as exc:
                    thrown = exc
        except BaseException as exc:
            state.finish(yielded.outputs(), exc)
            raise

    return traced


def _decorate(
    func: Callable[..., Any], event_type: Any = None, event_name: Any = None, tracer: Any = None, **kwargs: Any
) -> Callable[..., Any]:
    if not callable(func):
        logger.warning("tracehive: @trace needs a function, got %s; left as is", type(func).__name__)
        return func
    namespaces = {ns: kwargs.pop(ns) for ns in _STATIC_NAMESPACES if ns in kwargs}
    if "span_config" in kwargs:  # HoneyHive's name for the decorator's config
        namespaces.setdefault("config", kwargs.pop("span_config"))
    if kwargs:
        logger.debug("tracehive: @trace ignores unsupported arguments %s", sorted(kwargs))
    spec = _Spec(func, event_type, event_name, namespaces, tracer)
    if inspect.isasyncgenfunction(func):
        return _wrap_async_generator(func, spec)
    if inspect.isgeneratorfunction(func):
        return _wrap_generator(func, spec)
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, spec)
    return _wrap_function(func, spec)


def trace(
    event_type: Any = None,
    event_name: str | None = None,
    metadata: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    tracer: Any = None,
    **kwargs: Any,
) -> Any:
    """Trace every call of the decorated function; usable bare (``@trace``) or with arguments.

    ``event_type`` is "tool" (default), "model", "chain" or "function"; ``event_name`` defaults
    to the function's qualified name; ``metadata`` and ``config`` are recorded on every call;
    ``tracer`` defaults to the current session's tracer (the context's, else the default one).
    """
    options = {"event_name": event_name, "metadata": metadata, "config": config, "tracer": tracer, **kwargs}
    if callable(event_type) and not isinstance(event_type, str):
        return _decorate(event_type, **options)
    return lambda func: _decorate(func, event_type, **options)


def atrace(
    event_type: Any = None,
    event_name: str | None = None,
    metadata: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    tracer: Any = None,
    **kwargs: Any,
) -> Any:
    """HoneyHive's async decorator; :func:`trace` already handles coroutines, so this is an alias."""
    return trace(event_type, event_name, metadata, config, tracer, **kwargs)


def trace_class(cls: type) -> type:
    """Trace every public method of ``cls`` (its own and inherited), each named ``Class.method``.

    Static and class methods, properties and names starting with ``_`` are left alone.
    """
    if not isinstance(cls, type):
        logger.warning("tracehive: @trace_class needs a class, got %s; left as is", type(cls).__name__)
        return cls
    for name in dir(cls):
        member = inspect.getattr_static(cls, name, None)
        if name.startswith("_") or isinstance(member, staticmethod | classmethod | property):
            continue
        if inspect.isfunction(member):
            setattr(cls, name, _decorate(member, event_name=f"{cls.__name__}.{name}"))
    return cls
