"""Timings and limits of the export pipeline, read from the environment when a pipeline is made.

Every value has a safe default; a value that is not a positive number is logged and ignored, so a
typo in the environment can never stop the traced program.

============================================  =======  =================================================
Environment variable                          Default  Meaning
============================================  =======  =================================================
``TRACEHIVE_EXPORT_TIMEOUT``                  5        seconds one HTTP attempt may take (connect, send,
                                                       wait for the answer) before it is cut and retried
``TRACEHIVE_EXPORT_MAX_RETRY_TIME``           120      seconds a batch is retried before it is dropped
``TRACEHIVE_EXPORT_BACKOFF_INITIAL``          0.5      first wait between attempts; doubles each failure
``TRACEHIVE_EXPORT_BACKOFF_MAX``              30       longest wait between attempts (before jitter)
``TRACEHIVE_EXPORT_RETRY_AFTER_MAX``          60       longest ``Retry-After`` honoured, in seconds
``TRACEHIVE_MAX_QUEUE_SIZE``                  8192     spans held in memory, waiting or being sent; past
                                                       it new spans are dropped (and counted)
``TRACEHIVE_MAX_BATCH_SIZE``                  512      spans per export request
``TRACEHIVE_SCHEDULE_DELAY``                  1        seconds between two exports of a part-full queue
``TRACEHIVE_EXIT_FLUSH_TIMEOUT``              2        seconds the exit flush may take
============================================  =======  =================================================
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass

logger = logging.getLogger("tracehive")

ENV_PREFIX = "TRACEHIVE_"


@dataclass(frozen=True)
class ExportSettings:
    """One pipeline's timings (seconds) and sizes (spans); field ``x`` is ``TRACEHIVE_X`` upper-cased."""

    export_timeout: float = 5.0
    export_max_retry_time: float = 120.0
    export_backoff_initial: float = 0.5
    export_backoff_max: float = 30.0
    export_retry_after_max: float = 60.0
    max_queue_size: int = 8192
    max_batch_size: int = 512
    schedule_delay: float = 1.0
    exit_flush_timeout: float = 2.0

    @classmethod
    def from_env(cls) -> ExportSettings:
        """The defaults, overridden by the ``TRACEHIVE_*`` variables that hold a valid value."""
        values = {}
        for field in dataclasses.fields(cls):
            var = ENV_PREFIX + field.name.upper()
            raw = os.environ.get(var)
            if raw is None or not raw.strip():
                continue
            parsed = _positive(raw, int if field.type == "int" else float)
            if parsed is None:
                logger.warning("tracehive: %s=%r is not a positive number; using %s", var, raw, field.default)
            else:
                values[field.name] = parsed
        return cls(**values)


def _positive(raw: str, kind: type[int] | type[float]) -> int | float | None:
    try:
        value = kind(raw.strip())
    except ValueError:
        return None
    return value if value > 0 and math.isfinite(value) else None
