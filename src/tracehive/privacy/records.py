"""Redaction applied to what ingest maps, before anything is checked, serialised or written."""

from __future__ import annotations

from collections.abc import Mapping

from tracehive.model import Batch
from tracehive.privacy.rules import Redactor


def redact_batch(batch: Batch, redactors: Mapping[str, Redactor] | None) -> None:
    """Apply each project's rules, in place, to the events and session updates of that project."""
    if not redactors:
        return
    for event in batch.events:
        redactor = redactors.get(event.project)
        if redactor:
            redactor.apply(event.namespaces)
            if event.error:
                event.error = redactor.redact_text(event.error)
    for update in batch.sessions:
        redactor = redactors.get(update.project)
        if redactor:
            redactor.apply(update.namespaces)
