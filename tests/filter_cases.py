"""Filter test data shared by the DuckDB and ClickHouse compilers: the same rows, the same
filters and the same expected matches for both."""

from datetime import datetime

INJECTED_USER = "x'; DROP TABLE sessions; --"

SESSIONS = [
    {
        "session_id": "s1",
        "user_id": "u1",
        "start_time": datetime(2026, 1, 1, 10),
        "duration_ms": 1500,
        "user_properties": {
            "is_beta": True,
            "age": 25,
            "plan": "pro",
            "preferences": {"theme": "Dark", "langs": ["en", "fr"], "ui": {"font": {"size": 14}}},
        },
        "metadata": {
            "http.status": 200,
            "tags": ["alpha", "beta", 3, True, None],
            "flag": None,
            "score": 0.5,
            'quote"key': "q",
            "it's": 1,
            "a/b": "slash",
            "a~b": "tilde",
            "": "empty",
        },
    },
    {
        "session_id": "s2",
        "user_id": "u2",
        "start_time": datetime(2025, 12, 31, 22),
        "duration_ms": 20,
        "user_properties": {"is_beta": "true", "age": "25", "plan": "free"},
        "metadata": {"http.status": 500, "tags": ["Alpha", 3.0], "flag": False, "score": 2},
    },
    {
        "session_id": "s3",
        "user_id": None,
        "start_time": datetime(2026, 2, 1),
        "duration_ms": 300,
        "user_properties": {"is_beta": False, "age": 25.0, "preferences": {"theme": "light"}},
        "metadata": {"tags": "alpha beta", "big": 9007199254740993, "neg": -3},
    },
    {"session_id": "s4", "user_id": INJECTED_USER, "start_time": datetime(2026, 3, 1), "duration_ms": 0},
]
ALL = {"s1", "s2", "s3", "s4"}

# (filter, the sessions it matches)
MATCH_CASES = [
    # booleans match only JSON booleans
    ("user_properties.is_beta = true", {"s1"}),
    ('user_properties.is_beta = "true"', {"s2"}),
    ("user_properties.is_beta = false", {"s3"}),
    ("user_properties.is_beta != true", {"s2", "s3", "s4"}),
    # numbers match numbers, whatever their JSON spelling, and never strings
    ("user_properties.age = 25", {"s1", "s3"}),
    ("user_properties.age = 25.0", {"s1", "s3"}),
    ('user_properties.age = "25"', {"s2"}),
    ("user_properties.age != 25", {"s2", "s4"}),
    ("user_properties.age > 24", {"s1", "s3"}),
    ("user_properties.age >= 25", {"s1", "s3"}),
    ("user_properties.age < 25", set()),
    ("user_properties.age <= 25.5", {"s1", "s3"}),
    ("metadata.score > 1", {"s2"}),
    ("metadata.score < 1", {"s1"}),
    ("metadata.score < 1e1", {"s1", "s2"}),
    ("metadata.neg = -3", {"s3"}),
    ("metadata.neg < -2.5", {"s3"}),
    # integers beyond 2**53 compare exactly
    ("metadata.big = 9007199254740993", {"s3"}),
    ("metadata.big = 9007199254740992", set()),
    ("metadata.big > 9007199254740992", {"s3"}),
    # strings compare lexically, case-sensitively
    ('user_properties.plan > "free"', {"s1"}),
    ('user_properties.plan <= "free"', {"s2"}),
    ("user_properties.plan > 1", set()),
    # nested paths, list indexes, quoted keys
    ('user_properties.preferences.theme = "Dark"', {"s1"}),
    ('user_properties.preferences.theme = "dark"', set()),
    ("user_properties.preferences.ui.font.size = 14", {"s1"}),
    ('user_properties.preferences.langs.1 = "fr"', {"s1"}),
    ("user_properties.preferences.langs.2 exists", set()),
    ('metadata.tags.0 = "alpha"', {"s1"}),
    ('metadata."http.status" >= 500', {"s2"}),
    ('metadata."http.status" exists', {"s1", "s2"}),
    (r'metadata."quote\"key" = "q"', {"s1"}),
    ('metadata."it\'s" = 1', {"s1"}),
    ('metadata."a/b" = "slash"', {"s1"}),
    ('metadata."a~b" = "tilde"', {"s1"}),
    ('metadata."" = "empty"', {"s1"}),
    # null, exists, and missing fields
    ("metadata.flag exists", {"s1", "s2"}),
    ("not metadata.flag exists", {"s3", "s4"}),
    ("metadata.flag = null", {"s1"}),
    ("metadata.flag != null", {"s2", "s3", "s4"}),
    ("metadata.flag = false", {"s2"}),
    ("metadata.missing = 1", set()),
    ("metadata.missing != 1", ALL),
    ("metadata.missing exists", set()),
    ("not (metadata.missing > 1)", ALL),
    ("metadata exists", ALL),
    # contains: substring on strings, typed membership on lists
    ('user_properties.preferences.theme contains "ARK"', {"s1"}),
    ('metadata.tags contains "alpha"', {"s1", "s3"}),
    ('metadata.tags contains "Alpha"', {"s2", "s3"}),
    ('metadata.tags contains "ph"', {"s3"}),
    ("metadata.tags contains 3", {"s1", "s2"}),
    ('metadata.tags contains "3"', set()),
    ("metadata.tags contains true", {"s1"}),
    ("metadata.tags contains null", {"s1"}),
    ('user_properties.preferences contains "Dark"', set()),
    ('not metadata.tags contains "beta"', {"s2", "s4"}),
    # scalar columns
    ('user_id = "u1"', {"s1"}),
    ("user_id = null", {"s3"}),
    ("user_id != null", {"s1", "s2", "s4"}),
    ('user_id != "u1"', {"s2", "s3", "s4"}),
    ('user_id contains "U"', {"s1", "s2"}),
    ("user_id = 1", set()),
    ("user_id exists", {"s1", "s2", "s4"}),
    ('user_id > "u1"', {"s2", "s4"}),
    ("duration_ms > 100", {"s1", "s3"}),
    ("duration_ms = 20", {"s2"}),
    ('duration_ms = "20"', set()),
    ("duration_ms contains 2", set()),
    ("event_count = 1 and error_count = 0", ALL),
    # time columns read ISO-8601 strings and epoch milliseconds
    ('start_time >= "2026-01-01T00:00:00Z"', {"s1", "s3", "s4"}),
    ('start_time < "2026-01-01"', {"s2"}),
    ('start_time = "2026-01-01T11:00:00+01:00"', {"s1"}),
    ('start_time < "2026-01-01T00:00:00+02:00"', set()),
    ("start_time >= 1767225600000", {"s1", "s3", "s4"}),
    ("start_time = 1767261600000.0", {"s1"}),
    ("end_time = null", ALL),
    ("end_time exists", set()),
    ("start_time = true", set()),
    # boolean combinations
    ('user_properties.plan = "pro" or user_properties.plan = "free"', {"s1", "s2"}),
    ("user_properties.age = 25 and not user_properties.is_beta = true", {"s3"}),
    ("not (user_properties.age = 25 or metadata.flag exists)", {"s4"}),
    ("(metadata.score < 1 or metadata.score > 1) and metadata.tags contains 3", {"s1", "s2"}),
    ("not not user_id = null", {"s3"}),
]

# (field, literal): '!=' and 'not =' must give exactly the other sessions
NOT_EQUAL_CASES = [
    ("user_properties.age", "25"),
    ("user_properties.is_beta", "true"),
    ("metadata.tags.0", '"alpha"'),
    ("metadata.flag", "null"),
    ("metadata.missing", "0"),
    ("user_id", '"u1"'),
    ("user_id", "null"),
    ("start_time", '"2026-01-01T10:00:00Z"'),
]

INJECTION_ATTEMPTS = [
    "user_properties.plan = \"x' OR '1'='1\"",
    "user_properties.plan = 'pro\\' OR TRUE --'",
    'user_properties.plan contains "%\' OR 1=1 --"',
    'metadata."x\') OR TRUE --" exists',
    'metadata."\\") OR TRUE; DROP TABLE sessions; --" = 1',
    'metadata."$[*]" exists',
    "metadata.\"*\" contains 'a'",
    'user_id = "x\' OR user_id IS NOT NULL --"',
]
