"""Finding personal data inside free text: emails, phone numbers, card numbers, IP addresses.

Each detector is a documented regular expression that proposes candidates and, where one exists, a
check that confirms them (the Luhn checksum for cards, :mod:`ipaddress` for IPs, a digit count for
phone numbers), so that order numbers, dates and version strings are left alone. The expressions
are in docs/privacy.md too; change both together.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

# A pragmatic subset of RFC 5322 addresses: local part of letters, digits and ._%+-, a domain of
# labels and a top-level domain of two letters or more (what HTML's type=email accepts, minus quoting).
EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b")
# 13 to 19 digits, optionally grouped by single spaces or dashes (ISO/IEC 7812 lengths).
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
# Hex groups and colons, at least two colons; ipaddress decides whether it is an address.
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
# International (+ and a country code) or grouped national numbers: digits in groups separated by
# a space, dot or dash, an optional (area code); 9 to 15 digits in all (E.164 allows up to 15).
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w])")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _is_card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_phone(text: str) -> bool:
    # A bare run of digits is an id or an amount far more often than a phone number.
    return 9 <= len(_digits(text)) <= 15 and (text.startswith(("+", "(")) or not text.isdigit())


# Cheap checks (in C) that a text may hold the kind of data at all: most text holds none, and
# skipping it costs a fraction of running the expression over it.
_FOUR_DIGITS = re.compile(r"\d{4}")
_DOTTED_DIGIT = re.compile(r"\d\.\d")
_TWO_DIGITS = re.compile(r"\d\d")


# Module-level functions, not lambdas: the rules travel to the ingest worker processes pickled.
def _has_at(text: str) -> bool:
    return "@" in text


def _has_two_colons(text: str) -> bool:
    return text.count(":") >= 2


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    pattern: re.Pattern[str]
    confirm: Callable[[str], bool] | None = None
    worth_a_look: Callable[[str], object] = bool

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the detector finds its kind of data in ``text``, as (start, end) pairs."""
        if not self.worth_a_look(text):
            return []
        return [m.span() for m in self.pattern.finditer(text) if self.confirm is None or self.confirm(m.group())]


# Applied in this order: an IP or a card number is never read again as a phone number.
DETECTORS: dict[str, tuple[Detector, ...]] = {
    "email": (Detector("email", EMAIL, None, _has_at),),
    "card": (Detector("card", CARD, _is_card, _FOUR_DIGITS.search),),
    "ip": (
        Detector("ip", IPV4, _is_ip, _DOTTED_DIGIT.search),
        Detector("ip", IPV6, _is_ip, _has_two_colons),
    ),
    "phone": (Detector("phone", PHONE, _is_phone, _TWO_DIGITS.search),),
}
PATTERN_NAMES = tuple(DETECTORS)
