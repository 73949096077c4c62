"""Personal data under control: redaction rules shared by the server's ingest and the SDK, and the
filter rewrite that lets a clear value find what was stored hashed. See docs/privacy.md."""

from tracehive.privacy.filters import rewrite_filter
from tracehive.privacy.rules import ACTIONS, Redactor, Rule, RuleError, parse_rules

__all__ = ["ACTIONS", "Redactor", "Rule", "RuleError", "parse_rules", "rewrite_filter"]
