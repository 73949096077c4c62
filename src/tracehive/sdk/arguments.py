"""Reading what the application passes to the tracer: never trusted, never a reason to raise."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger("tracehive")

# init's settings that HoneyHive's TracerConfig / SessionConfig objects may carry instead.
CONFIG_FIELDS = ("api_key", "project", "session_name", "source", "server_url", "session_id", "inputs")
T = TypeVar("T")


def never_raises(default: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Log a warning and return ``default`` instead of raising into the application."""

    def decorate(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def safe(*args: Any, **kwargs: Any) -> T:
            try:
                return method(*args, **kwargs)
            except Exception:
                logger.warning("tracehive: %s failed", method.__name__, exc_info=True)
                return default

        return safe

    return decorate


def text(name: str, value: Any, *env: str) -> str | None:
    """``value`` if it is a non-empty string, else the first set environment variable."""
    if value is not None and not isinstance(value, str):
        logger.warning("tracehive: init(%s=...) expects a string, got %s; ignored", name, type(value).__name__)
        value = None
    if value:
        return value
    for var in env:
        if os.environ.get(var):
            return os.environ[var]
    return None


def script_name() -> str:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main_file).stem if main_file else "python"


def from_configs(given: dict[str, Any], *configs: Any) -> dict[str, Any]:
    """Fill what was not given from HoneyHive-style config objects (any object with those fields)."""
    for config in configs:
        if config is None or isinstance(config, str):
            continue
        for name in CONFIG_FIELDS:
            if given.get(name) is None:
                try:
                    given[name] = getattr(config, name, None)
                except Exception:
                    logger.warning("tracehive: could not read %s from %s; ignored", name, type(config).__name__)
    return given


def are_headers(carrier: Any, caller: str) -> bool:
    if isinstance(carrier, dict):
        return True
    logger.warning("tracehive: %s expects a dict of HTTP headers, got %s; ignored", caller, type(carrier).__name__)
    return False


def seconds(timeout: Any, timeout_millis: Any, default: float) -> float:
    """``timeout`` (seconds) if given, else ``timeout_millis``, else ``default``, in seconds."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return float(timeout)
    if isinstance(timeout_millis, int | float) and not isinstance(timeout_millis, bool):
        return timeout_millis / 1000
    return default
