"""A recursive-descent parser for the filter language (grammar in README.md next to this file).

It reads characters directly rather than a token stream, because what a piece of text means
depends on where it stands: ``0`` after a dot is a list index, after ``=`` it is a number.
"""

from __future__ import annotations

import json
import re

from tracehive.filters.ast import (
    COMPARE_OPS,
    ORDERING_OPS,
    And,
    Compare,
    Exists,
    Expr,
    Field,
    FilterError,
    Not,
    Or,
    Value,
)

MAX_LENGTH = 4096
MAX_DEPTH = 32
# Any backend can still treat an integer this size as a float (beyond it, float() overflows).
_MAX_INTEGER = 2**1023

_WORD = re.compile(r"[^\W\d][\w-]*")  # a letter or _, then letters, digits, _ and -
_INDEX = re.compile(r"\d+(?![\w-])")
_NUMBER = re.compile(r"-?\d+(?P<frac>\.\d+)?(?P<exp>[eE][+-]?\d+)?(?![\w.-])")
_SYMBOL_OPS = re.compile(r"!=|>=|<=|=|>|<")
_SNIPPET = re.compile(r"[\w.-]+|!=|>=|<=|\S")
_KEYWORDS = frozenset({"and", "or", "not", "contains", "exists", "true", "false", "null"})
_LITERAL_WORDS: dict[str, Value] = {"true": True, "false": False, "null": None}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_OPERATOR_LIST = ", ".join(COMPARE_OPS) + ", exists"


def parse(text: str) -> Expr | None:
    """Parse a filter; an empty or blank filter means "no filter" and gives None."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter is too long ({len(text)} characters, at most {MAX_LENGTH})", MAX_LENGTH)
    if not text.strip():
        return None
    return _Parser(text).parse()


def parse_field(text: str) -> Field:
    """Parse a field alone, like ``user_properties.plan``: what group-by and completion take."""
    parser = _Parser(text[:MAX_LENGTH])
    field = parser.field(None)
    if parser.skip() < len(parser.text):
        raise parser.expected("the end of the field")
    return field


def format_field(column: str, path: tuple[str | int, ...] = ()) -> str:
    """Write a field the way ``parse_field`` reads it: plain keys bare, any other key quoted."""
    parts = [column]
    for key in path:
        plain = isinstance(key, int) or (_WORD.fullmatch(key) and key.lower() not in _KEYWORDS)
        parts.append(str(key) if plain else json.dumps(key, ensure_ascii=False))
    return ".".join(parts)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    # --- grammar ---------------------------------------------------------------------------------

    def parse(self) -> Expr:
        expr = self.or_expr(None)
        if self.skip() < len(self.text):
            raise self.expected("'and', 'or' or the end of the filter")
        return expr

    def or_expr(self, after: str | None) -> Expr:
        items = [self.and_expr(after)]
        while self.keyword("or"):
            items.append(self.and_expr("'or'"))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self, after: str | None) -> Expr:
        items = [self.unary(after)]
        while self.keyword("and"):
            items.append(self.unary("'and'"))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, after: str | None) -> Expr:
        start = self.skip()
        if self.keyword("not"):
            self.enter(start)
            item = self.unary("'not'")
            self.depth -= 1
            return Not(item)
        if self.text.startswith("(", start):
            self.enter(start)
            self.pos += 1
            expr = self.or_expr("'('")
            if not self.text.startswith(")", self.skip()):
                raise self.expected("'and', 'or' or ')'")
            self.pos += 1
            self.depth -= 1
            return expr
        return self.condition(after)

    def condition(self, after: str | None) -> Expr:
        field = self.field(after)
        field_text = self.text[field.position : self.pos]
        if self.keyword("exists"):
            return Exists(field)
        if self.keyword("contains"):
            op = "contains"
        else:
            match = _SYMBOL_OPS.match(self.text, self.skip())
            if not match:
                raise self.expected(f"an operator ({_OPERATOR_LIST}) after '{field_text}'")
            op = match.group()
            self.pos = match.end()
        start = self.skip()
        value = self.value(op)
        if op in ORDERING_OPS and (value is None or isinstance(value, bool)):
            raise FilterError(f"'{op}' compares numbers or strings, not {self.text[start : self.pos]}", start)
        return Compare(field, op, value)

    def field(self, after: str | None) -> Field:
        start = self.skip()
        match = _WORD.match(self.text, start)
        if not match or match.group().lower() in _KEYWORDS:
            raise self.expected("a condition" + (f" after {after}" if after else ""))
        self.pos = match.end()
        path: list[str | int] = []
        while self.text.startswith(".", self.pos):
            self.pos += 1
            path.append(self.path_segment())
        return Field(match.group(), tuple(path), position=start)

    def path_segment(self) -> str | int:
        if self.text[self.pos : self.pos + 1] in ("'", '"'):
            return self.string()
        for pattern, convert in ((_INDEX, int), (_WORD, str)):
            match = pattern.match(self.text, self.pos)
            if match:
                self.pos = match.end()
                return convert(match.group())
        raise self.expected("a key after '.' (quote keys that are not plain names, like .\"http.status\")")

    def value(self, op: str) -> Value:
        start = self.pos
        if self.text[start : start + 1] in ("'", '"'):
            return self.string()
        number = _NUMBER.match(self.text, start)
        if number:
            self.pos = number.end()
            if number.group("frac") or number.group("exp"):
                return float(number.group())
            integer = int(number.group())
            if abs(integer) > _MAX_INTEGER:
                raise FilterError("integer is too large", start)
            return integer
        word = _WORD.match(self.text, start)
        if word and word.group().lower() in _LITERAL_WORDS:
            self.pos = word.end()
            return _LITERAL_WORDS[word.group().lower()]
        hint = " (put strings in quotes)" if word and word.group().lower() not in _KEYWORDS else ""
        raise self.expected(f"a value after '{op}'", hint)

    def string(self) -> str:
        """Read a quoted string at ``self.pos``; either quote works, escapes are JSON's."""
        quote, start = self.text[self.pos], self.pos
        out: list[str] = []
        i = start + 1
        while i < len(self.text):
            char = self.text[i]
            if char == quote:
                self.pos = i + 1
                return "".join(out)
            if char != "\\":
                out.append(char)
                i += 1
            elif self.text[i + 1 : i + 2] == "u":
                code, i = self.unicode_escape(i)
                out.append(code)
            elif self.text[i + 1 : i + 2] in _ESCAPES:
                out.append(_ESCAPES[self.text[i + 1]])
                i += 2
            else:
                raise FilterError(f"unknown escape '{self.text[i : i + 2]}' in string", i)
        raise FilterError("unterminated string", start)

    def unicode_escape(self, i: int) -> tuple[str, int]:
        """Decode ``\\uXXXX`` at offset ``i`` (joining a surrogate pair); return it and the offset after."""
        code = self.hex4(i)
        if 0xD800 <= code < 0xDC00 and self.text.startswith("\\u", i + 6):
            low = self.hex4(i + 6)
            if 0xDC00 <= low < 0xE000:
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), i + 12
        if 0xD800 <= code < 0xE000:
            raise FilterError("unpaired surrogate in '\\u' escape", i)
        return chr(code), i + 6

    def hex4(self, i: int) -> int:
        digits = self.text[i + 2 : i + 6]
        if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise FilterError("expected 4 hex digits after '\\u'", i)
        return int(digits, 16)

    # --- helpers ---------------------------------------------------------------------------------

    def skip(self) -> int:
        """Move past whitespace; return the new position."""
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos

    def keyword(self, word: str) -> bool:
        """Consume ``word`` (any case) if it is the next whole word."""
        match = _WORD.match(self.text, self.skip())
        if match and match.group().lower() == word:
            self.pos = match.end()
            return True
        return False

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filter is nested too deeply (at most {MAX_DEPTH} levels)", position)

    def expected(self, what: str, hint: str = "") -> FilterError:
        position = self.pos
        found = _SNIPPET.match(self.text, position)
        if not found:
            return FilterError(f"expected {what}", position)
        return FilterError(f"expected {what}, found '{found.group()[:30]}'{hint}", position)
