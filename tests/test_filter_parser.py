"""The filter parser: syntax, precedence, literals, and where each error is reported."""

import math

import pytest

from tracehive.filters import MAX_DEPTH, MAX_LENGTH, And, Compare, Exists, Field, FilterError, Not, Or, parse


def cmp(column: str, *path: str | int, op: str = "=", value: object = 1) -> Compare:
    return Compare(Field(column, tuple(path)), op, value)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_filter_is_none(text):
    assert parse(text) is None


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<=", "contains"])
def test_each_comparison_operator(op):
    assert parse(f"metrics.score {op} 1") == cmp("metrics", "score", op=op)


def test_operators_need_no_spaces():
    assert parse("metrics.score>=1") == cmp("metrics", "score", op=">=")
    assert parse("metrics.score!=1") == cmp("metrics", "score", op="!=")


def test_exists_is_postfix_and_can_be_negated():
    flag = Field("metadata", ("flag",))
    assert parse("metadata.flag exists") == Exists(flag)
    assert parse("not metadata.flag exists") == Not(Exists(flag))
    assert parse("NOT metadata.flag EXISTS") == Not(Exists(flag))


def test_keywords_are_case_insensitive():
    assert parse("a = 1 AND b Contains 'x' oR NOT c = TRUE") == Or(
        (And((cmp("a"), cmp("b", op="contains", value="x"))), Not(cmp("c", value=True)))
    )


def test_not_binds_tighter_than_and_which_binds_tighter_than_or():
    assert parse("a = 1 or b = 1 and not c = 1") == Or((cmp("a"), And((cmp("b"), Not(cmp("c"))))))


def test_parentheses_override_precedence():
    assert parse("(a = 1 or b = 1) and c = 1") == And((Or((cmp("a"), cmp("b"))), cmp("c")))
    assert parse("not (a = 1 and b = 1)") == Not(And((cmp("a"), cmp("b"))))


def test_chains_of_one_operator_are_flat():
    assert parse("a = 1 and b = 1 and c = 1") == And((cmp("a"), cmp("b"), cmp("c")))


def test_words_that_start_with_a_keyword_are_fields():
    assert parse("notes = 1 and order = 1") == And((cmp("notes"), cmp("order")))


def test_dotted_paths_at_any_depth():
    assert parse("user_properties.preferences.ui.theme = 1") == cmp("user_properties", "preferences", "ui", "theme")


def test_quoted_and_unusual_keys():
    assert parse('metadata."http.status" = 1') == cmp("metadata", "http.status")
    assert parse(r"metadata.'it\'s' = 1") == cmp("metadata", "it's")
    assert parse('metadata."" = 1') == cmp("metadata", "")
    assert parse("metadata.x-request-id = 1") == cmp("metadata", "x-request-id")
    assert parse("metadata.thème = 1") == cmp("metadata", "thème")


def test_integer_segments_index_lists_and_quoted_digits_are_keys():
    assert parse("metadata.tags.0 = 1") == cmp("metadata", "tags", 0)
    assert parse('metadata.tags."0" = 1') == cmp("metadata", "tags", "0")
    assert parse("metadata.rows.12.name = 1") == cmp("metadata", "rows", 12, "name")


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"dark"', "dark"),
        ("'dark'", "dark"),
        ('""', ""),
        (r'"say \"hi\"\\ \n\t\/"', 'say "hi"\\ \n\t/'),
        (r"'it\'s \"x\"'", 'it\'s "x"'),
        ('"it\'s"', "it's"),
        (r'"\u00e9\ud83d\ude00"', "é😀"),
        ("25", 25),
        ("-25", -25),
        ("0", 0),
        ("2.5", 2.5),
        ("-0.5", -0.5),
        ("1e3", 1000.0),
        ("-1.5E-2", -0.015),
        ("true", True),
        ("FALSE", False),
        ("null", None),
        ("Null", None),
    ],
)
def test_literals_keep_their_types(literal, value):
    expr = parse(f"metadata.x = {literal}")
    assert expr == cmp("metadata", "x", value=value)
    assert type(expr.value) is type(value)


def test_big_integers_stay_exact():
    assert parse("metadata.id = 9007199254740993").value == 9007199254740993


def test_float_overflow_reads_as_infinity():
    assert parse("metadata.x > 1e999").value == math.inf


def test_positions_are_kept_but_do_not_affect_equality():
    expr = parse("a = 1 and  metadata.x = 2")
    assert expr.items[1].field.position == 11
    assert Field("metadata", ("x",), position=0) == expr.items[1].field


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("user_properties.plan = ", "expected a value after '='", 23),
        ("user_properties.plan = )", "expected a value after '=', found ')'", 23),
        ("metadata.env = prod", "expected a value after '=', found 'prod' (put strings in quotes)", 15),
        ("metadata.x contains and", "expected a value after 'contains', found 'and'", 20),
        ("metadata.x = 25abc", "expected a value after '=', found '25abc'", 13),
        ("metadata.x", "expected an operator (=, !=, >, >=, <, <=, contains, exists) after 'metadata.x'", 10),
        ("metadata.x == 1", "expected a value after '=', found '='", 12),
        ("metadata.x is 1", "after 'metadata.x', found 'is'", 11),
        ("= 1", "expected a condition, found '='", 0),
        ("and a = 1", "expected a condition, found 'and'", 0),
        ("a = 1 and", "expected a condition after 'and'", 9),
        ("a = 1 or or b = 1", "expected a condition after 'or', found 'or'", 9),
        ("not", "expected a condition after 'not'", 3),
        ("()", "expected a condition after '(', found ')'", 1),
        ("(a = 1", "expected 'and', 'or' or ')'", 6),
        ("(a = 1 b = 2)", "expected 'and', 'or' or ')', found 'b'", 7),
        ("a = 1)", "expected 'and', 'or' or the end of the filter, found ')'", 5),
        ("a = 1 b = 2", "expected 'and', 'or' or the end of the filter, found 'b'", 6),
        ("metadata. = 1", "expected a key after '.'", 9),
        ("metadata..x = 1", "expected a key after '.'", 9),
        ("metadata.2fa = 1", "expected a key after '.'", 9),
        ('metadata.x = "abc', "unterminated string", 13),
        ("metadata.'x = 1", "unterminated string", 9),
        (r'metadata.x = "a\qb"', r"unknown escape '\q' in string", 15),
        (r'metadata.x = "\u12"', r"expected 4 hex digits after '\u'", 14),
        (r'metadata.x = "\ud83d"', r"unpaired surrogate in '\u' escape", 14),
        ("metadata.x > null", "'>' compares numbers or strings, not null", 13),
        ("metadata.x <= true", "'<=' compares numbers or strings, not true", 14),
        ("metadata.x = 1" + "0" * 400, "integer is too large", 13),
    ],
)
def test_syntax_errors_say_what_was_expected_where(text, message, position):
    with pytest.raises(FilterError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.position == position
    assert str(info.value).endswith(f" at position {position}")


def test_length_limit():
    near = "metadata.x = " + '"' + "y" * (MAX_LENGTH - 15) + '"'
    assert len(near) == MAX_LENGTH
    assert parse(near) is not None
    with pytest.raises(FilterError, match="too long") as info:
        parse(near + " ")
    assert info.value.position == MAX_LENGTH


def test_nesting_limit_for_parentheses_and_not():
    assert parse("(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH) == cmp("a")
    with pytest.raises(FilterError, match="nested too deeply") as info:
        parse("(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1))
    assert info.value.position == MAX_DEPTH
    with pytest.raises(FilterError, match="nested too deeply"):
        parse("not " * (MAX_DEPTH + 1) + "a = 1")


def test_deep_nesting_within_the_length_limit_is_a_filter_error_not_recursion():
    with pytest.raises(FilterError):
        parse("(" * 2000 + "a = 1" + ")" * 2000)
    with pytest.raises(FilterError):
        parse("not " * 1000)


def test_nesting_depth_is_counted_per_branch_not_in_total():
    text = " and ".join(["(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH] * 3)
    assert parse(text) == And((cmp("a"),) * 3)
