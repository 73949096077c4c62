"""The SDK never hurts the program it traces, whatever the server does.

Every scenario runs against a real loopback HTTP server (``Capture``) that can refuse, fail with a
status (and ``Retry-After``), hold connections, or reject large bodies. Timings are shortened
through the ``TRACEHIVE_*`` variables so each scenario takes a few seconds. Measured figures are
written to ``test-artifacts/sdk-*.json``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from tests.test_sdk_export import Capture, capture_fixture, closed_port, run_program  # noqa: F401 (fixture)

from tracehive import HoneyHiveTracer, atrace, flush, trace
from tracehive import attributes as A
from tracehive.sdk import pipeline, sessions
from tracehive.sdk.delivery import QUEUE_FULL
from tracehive.sdk.export import OtlpHttpExporter, retry_after_seconds
from tracehive.sdk.settings import ExportSettings

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
INPUTS = f"{A.NAMESPACE_PREFIX}inputs"
FAST = {
    "TRACEHIVE_EXPORT_TIMEOUT": "2",
    "TRACEHIVE_EXPORT_BACKOFF_INITIAL": "0.1",
    "TRACEHIVE_EXPORT_BACKOFF_MAX": "0.4",
    "TRACEHIVE_EXPORT_MAX_RETRY_TIME": "30",
    "TRACEHIVE_SCHEDULE_DELAY": "0.1",
}
# Scheduling noise allowed on top of a computed wait (CI machines are busy).
SLACK_S = 0.5


def record_figures(name: str, figures: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"sdk-{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Short export timings for the pipelines made in this test; they are closed afterwards."""
    for var, value in FAST.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(sessions, "_default", None)
    token = otel_context.attach(otel_context.Context())  # no session from an earlier test
    pipeline.use_exporter(None)
    yield
    otel_context.detach(token)
    pipeline.use_exporter(None)


@pytest.fixture
def one_batch(fast: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export thread never wakes by itself: only flush() exports, all queued spans in one batch."""
    monkeypatch.setenv("TRACEHIVE_SCHEDULE_DELAY", "60")


def start_session(url: str) -> pipeline.Pipeline:
    HoneyHiveTracer.init(api_key="k", project="reliability", server_url=url)
    return pipeline.get_pipeline(url, "k")


@trace(event_name="step")
def step(who: str, i: int) -> int:
    return i


def steps(capture: Capture) -> Counter[tuple[str, int]]:
    """How many times each traced ``step(who, i)`` reached the server."""
    found: Counter[tuple[str, int]] = Counter()
    for _, _, name, attrs in capture.received():
        if name == "step":
            inputs = json.loads(attrs[INPUTS])
            found[(inputs["who"], inputs["i"])] += 1
    return found


def assert_each_span_once(capture: Capture, expected: set[tuple[str, int]]) -> None:
    ids = Counter(span_id for span_id, _, _, _ in capture.received())
    assert ids and max(ids.values()) == 1, "a span id reached the server twice"
    assert steps(capture) == Counter(expected)


def failed_attempts(capture: Capture) -> list[float]:
    return [at for at, status in capture.attempts if status != 200]


# --- retry policy, without a server -------------------------------------------------------------


def test_retry_after_is_read_as_seconds_or_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-4") == 0.0
    assert 8 < retry_after_seconds(formatdate(time.time() + 10, usegmt=True)) <= 10  # type: ignore[operator]
    assert retry_after_seconds(formatdate(time.time() - 10, usegmt=True)) == 0.0
    for junk in (None, "", "soon", "nan", "inf"):
        assert retry_after_seconds(junk) is None


def test_backoff_doubles_with_jitter_up_to_its_cap_and_retry_after_is_a_floor() -> None:
    settings = ExportSettings(export_backoff_initial=0.5, export_backoff_max=4.0, export_retry_after_max=10.0)
    exporter = OtlpHttpExporter("http://127.0.0.1:1/v1/traces", {}, settings, ledger=None)  # type: ignore[arg-type]
    for failures, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0), (500, 4.0)]:
        exporter.failures = failures
        waits = [exporter.next_wait(None) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # jittered, not one fixed value
    exporter.failures = 0
    assert exporter.next_wait(7.0) == 7.0  # Retry-After is waited out in full
    assert exporter.next_wait(3600.0) == 10.0  # but no longer than export_retry_after_max
    exporter.failures = 3
    assert 2.0 <= exporter.next_wait(0.0) <= 4.0  # and never shortens the backoff


def test_settings_come_from_the_environment_and_bad_values_are_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACEHIVE_EXPORT_TIMEOUT", "0.25")
    monkeypatch.setenv("TRACEHIVE_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("TRACEHIVE_MAX_BATCH_SIZE", "ten")
    monkeypatch.setenv("TRACEHIVE_EXPORT_BACKOFF_MAX", "-1")
    settings = ExportSettings.from_env()
    assert settings.export_timeout == 0.25 and settings.max_queue_size == 100
    assert settings.max_batch_size == ExportSettings.max_batch_size
    assert settings.export_backoff_max == ExportSettings.export_backoff_max
    assert "TRACEHIVE_MAX_BATCH_SIZE" in caplog.text and "TRACEHIVE_EXPORT_BACKOFF_MAX" in caplog.text


# --- a failing, slow or picky server, in this process ----------------------------------------------


@pytest.mark.parametrize("status", [503, 500, 429])
def test_spans_are_retried_with_backoff_and_delivered_once_after_an_outage(
    fast: None, capture: Capture, status: int
) -> None:
    refusals = 6  # with a 0.1 s first wait doubling to 0.4 s: an outage of about 1.2 s
    capture.fail(status, times=refusals)
    session = start_session(capture.url)
    expected = set()
    for burst in range(3):
        for i in range(100):
            expected.add((f"burst{burst}", i))
            step(f"burst{burst}", i)
        time.sleep(0.2)
    assert flush(timeout=15)
    flushed_at = time.monotonic()
    assert_each_span_once(capture, expected)
    assert session.ledger.total_dropped() == 0 and session.ledger.pending == 0

    failures = failed_attempts(capture)
    back_at = min(at for at, answer in capture.attempts if answer == 200)
    waits = [later - earlier for earlier, later in itertools.pairwise([*failures, back_at])]
    assert len(failures) == refusals
    for n, wait in enumerate(waits):
        ceiling = min(0.1 * 2**n, 0.4)
        assert ceiling / 2 * 0.9 <= wait <= ceiling + SLACK_S, (n, waits)
    assert waits[-1] > waits[0]
    record_figures(
        f"outage-{status}",
        {
            "outage_s": round(back_at - failures[0], 3),
            "spans": len(expected),
            "failed_attempts": len(failures),
            "waits_s": [round(w, 3) for w in waits],
            "all_delivered_s_after_server_back": round(flushed_at - back_at, 3),
            "duplicates_seen_by_server": 0,
        },
    )


@pytest.mark.parametrize(
    ("status", "retry_after", "at_least_s"),
    [(429, "1", 1.0), (503, "date", 1.5)],
)
def test_retry_after_is_waited_out(
    one_batch: None, capture: Capture, status: int, retry_after: str, at_least_s: float
) -> None:
    if retry_after == "date":
        retry_after = formatdate(time.time() + 3, usegmt=True)
    capture.fail(status, times=1, retry_after=retry_after)
    start_session(capture.url)
    step("after", 0)
    assert flush(timeout=10)
    (refused, _), (accepted, _) = capture.attempts
    assert at_least_s * 0.98 <= accepted - refused <= 3 + SLACK_S
    assert_each_span_once(capture, {("after", 0)})


def test_a_huge_retry_after_is_capped(one_batch: None, capture: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEHIVE_EXPORT_RETRY_AFTER_MAX", "0.5")
    capture.fail(429, times=1, retry_after="3600")
    start_session(capture.url)
    step("capped", 0)
    assert flush(timeout=10)
    (refused, _), (accepted, _) = capture.attempts
    assert 0.5 * 0.98 <= accepted - refused <= 0.5 + SLACK_S
    assert_each_span_once(capture, {("capped", 0)})


def test_a_server_that_holds_the_connection_is_cut_by_the_export_timeout(
    fast: None, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It would answer after 30 s; each attempt is cut at 0.5 s and retried, and the spans arrive after."""
    monkeypatch.setenv("TRACEHIVE_EXPORT_TIMEOUT", "0.5")
    hold_s = 3.0
    capture.hold(hold_s)
    start_session(capture.url)
    expected = {("held", i) for i in range(100)}
    for who, i in sorted(expected):
        step(who, i)
    before = time.monotonic()
    assert not flush(timeout=1.0)
    assert time.monotonic() - before < 1.0 + SLACK_S
    time.sleep(max(hold_s - (time.monotonic() - before), 0))
    assert flush(timeout=10)
    held = [at for at, status in capture.attempts if status == 0]
    assert len(held) >= 2  # several attempts in 3 s: none waited for the 30 s answer
    assert_each_span_once(capture, expected)


@pytest.mark.parametrize("server", ["refused", "holding", "failing"])
def test_flush_returns_within_its_timeout(fast: None, capture: Capture, server: str) -> None:
    url = capture.url
    if server == "refused":
        url = f"http://127.0.0.1:{closed_port()}"
    elif server == "holding":
        capture.hold(60)
    else:
        capture.fail(503, seconds=60)
    start_session(url)
    for i in range(50):
        step(server, i)
    for timeout in (0.2, 1.0):
        before = time.monotonic()
        assert not flush(timeout=timeout)
        assert time.monotonic() - before < timeout + SLACK_S


def test_a_flush_with_no_timeout_stops_waiting_for_an_unreachable_server_and_keeps_the_spans(
    fast: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12, finding 12: flush() against a refusing server blocked for 30 s. Now about 2 s, False,
    one warning; the spans stay queued and reach the server once it is back."""
    port = closed_port()
    tracer = HoneyHiveTracer.init(api_key="k", project="reliability", server_url=f"http://127.0.0.1:{port}")
    expected = {("down", i) for i in range(50)}
    for who, i in sorted(expected):
        step(who, i)
    caplog.clear()
    before = time.monotonic()
    assert tracer.flush() is False
    waited = time.monotonic() - before
    assert pipeline.UNREACHABLE_FLUSH_S * 0.98 <= waited < pipeline.UNREACHABLE_FLUSH_S + SLACK_S
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    queued = pipeline.get_pipeline(f"http://127.0.0.1:{port}", "k").ledger.pending
    assert queued >= 50  # the steps and the session's own span
    assert len(warnings) == 1 and f"cannot reach http://127.0.0.1:{port}" in warnings[0], warnings
    assert f"{queued} spans stay queued" in warnings[0]
    back = Capture(port).start()
    try:
        assert flush(timeout=15)
        assert_each_span_once(back, expected)
    finally:
        back.close()
    record_figures("flush-unreachable", {"flush_s_server_refusing": round(waited, 3)})


def test_a_flush_with_a_timeout_waits_as_long_as_asked_for_an_unreachable_server(fast: None) -> None:
    start_session(f"http://127.0.0.1:{closed_port()}")
    step("patient", 0)
    before = time.monotonic()
    assert not flush(timeout=3.5)
    assert 3.5 * 0.98 <= time.monotonic() - before < 3.5 + SLACK_S


def test_a_batch_the_server_refuses_is_dropped_at_once_and_counted(one_batch: None, capture: Capture) -> None:
    capture.fail(400, seconds=60)
    session = start_session(capture.url)
    for i in range(10):
        step("refused", i)
    before = time.monotonic()
    assert not flush(timeout=5)
    assert time.monotonic() - before < 1.0
    assert len(capture.attempts) == 1  # not retried: the same request would get the same answer
    assert session.ledger.dropped == {"server refused them with HTTP 400": 11}  # 10 steps, 1 session record


def test_a_batch_too_large_for_the_server_is_split(fast: None, capture: Capture) -> None:
    capture.max_body = 4000
    start_session(capture.url)
    expected = {(f"{'x' * 100}", i) for i in range(64)}
    for who, i in sorted(expected):
        step(who, i)
    assert flush(timeout=10)
    assert any(status == 413 for _, status in capture.attempts)
    assert_each_span_once(capture, expected)


def test_threads_and_asyncio_tasks_trace_concurrently_with_correct_parents(fast: None, capture: Capture) -> None:
    @trace(event_name="inner")
    def inner(who: str, i: int) -> int:
        return i

    @trace(event_name="outer")
    def outer(who: str, i: int) -> int:
        return inner(who, i) + inner(who, i)

    @atrace(event_name="inner")
    async def ainner(who: str, i: int) -> int:
        await asyncio.sleep(0)
        return i

    @atrace(event_name="outer")
    async def aouter(who: str, i: int) -> int:
        first = await ainner(who, i)
        await asyncio.sleep(0)
        return first + await ainner(who, i)

    async def tasks() -> list[int]:
        return await asyncio.gather(*(aouter("task", i) for i in range(300)))

    start_session(capture.url)
    workers = [threading.Thread(target=lambda w=w: [outer(f"thread{w}", i) for i in range(100)]) for w in range(8)]
    for worker in workers:
        worker.start()
    assert asyncio.run(tasks()) == [2 * i for i in range(300)]
    for worker in workers:
        worker.join()
    assert flush(timeout=30)

    outers: dict[tuple[str, int], str] = {}
    inners: Counter[tuple[tuple[str, int], str | None]] = Counter()
    for span_id, parent, name, attrs in capture.received():
        if name in ("outer", "inner"):
            inputs = json.loads(attrs[INPUTS])
            call = (inputs["who"], inputs["i"])
            if name == "outer":
                assert call not in outers and parent is None
                outers[call] = span_id
            else:
                inners[(call, parent)] += 1
    assert len(outers) == 8 * 100 + 300
    assert inners == Counter({(call, span_id): 2 for call, span_id in outers.items()})


# --- whole programs ----------------------------------------------------------------------------------


OVERHEAD_PROGRAM = """
    import json, os, statistics, time
    from tracehive import HoneyHiveTracer, trace

    urls = json.loads(os.environ["SCENARIOS"])

    def work(i):
        return i

    calls = {"untraced": work}
    for name, url in urls.items():
        calls[name] = trace(tracer=HoneyHiveTracer.init(api_key="k", server_url=url), event_name="work")(work)
    times = {name: [] for name in calls}
    for _ in range(5):  # rounds, so every scenario sees the same machine load
        for name, call in calls.items():
            for i in range(1000):
                started = time.perf_counter_ns()
                call(i)
                times[name].append(time.perf_counter_ns() - started)
        time.sleep(0.1)
    figures = {}
    for name, ns in times.items():
        ns.sort()
        figures[name] = {"median_us": ns[len(ns) // 2] / 1e3, "p99_us": ns[len(ns) * 99 // 100] / 1e3}
    print(json.dumps(figures))
"""


def test_traced_calls_cost_the_same_whatever_the_server_does() -> None:
    healthy, holding, failing = Capture().start(), Capture().start(), Capture().start()
    holding.hold(3600)
    failing.fail(503, seconds=3600, retry_after="1")
    scenarios = {
        "healthy": healthy.url,
        "refused": f"http://127.0.0.1:{closed_port()}",
        "holding": holding.url,
        "failing_503": failing.url,
    }
    try:
        done, _ = run_program(
            OVERHEAD_PROGRAM,
            SCENARIOS=json.dumps(scenarios),
            TRACEHIVE_EXPORT_TIMEOUT="0.3",
            TRACEHIVE_EXPORT_BACKOFF_INITIAL="0.05",
            TRACEHIVE_EXPORT_BACKOFF_MAX="0.2",
        )
    finally:
        for server in (healthy, holding, failing):
            server.close()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    figures = json.loads(done.stdout)
    untraced = figures["untraced"]["median_us"]
    overhead = {name: round(f["median_us"] - untraced, 2) for name, f in figures.items() if name != "untraced"}
    record_figures("overhead", {"per_call": figures, "overhead_median_us": overhead})
    assert healthy.received(), "the healthy server got nothing"
    for name in ("refused", "holding", "failing_503"):
        assert overhead[name] < 5 * overhead["healthy"], overhead
        assert overhead[name] < 1000, overhead


MEMORY_PROGRAM = """
    import json, os
    from tracehive import HoneyHiveTracer, trace
    from tracehive.sdk import pipeline

    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    HoneyHiveTracer.init(api_key="k", project="memory")
    ledger = pipeline.get_pipeline(os.environ["HH_API_URL"], "k").ledger

    @trace
    def call(i):
        return i

    figures = {"rss_mb_at_start": rss_mb()}
    for i in range(1, 100_001):
        call(i)
        if i in (20_000, 100_000):
            figures[i] = {"rss_mb": rss_mb(), "queued": ledger.pending, "dropped": ledger.total_dropped()}
    print(json.dumps(figures))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_memory_stays_bounded_when_spans_pile_up_for_a_dead_server() -> None:
    done, elapsed = run_program(MEMORY_PROGRAM, HH_API_URL=f"http://127.0.0.1:{closed_port()}")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    figures = json.loads(done.stdout)
    at_20k, at_100k = figures["20000"], figures["100000"]
    cap = ExportSettings.max_queue_size
    assert at_20k["queued"] == at_100k["queued"] == cap
    assert at_100k["dropped"] - at_20k["dropped"] == 80_000  # every span past the cap, exactly
    assert at_100k["rss_mb"] - at_20k["rss_mb"] < 10
    assert at_20k["rss_mb"] - figures["rss_mb_at_start"] < 100
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and QUEUE_FULL in lines[0] and "100001 spans were not delivered" in lines[1], lines
    record_figures("memory", {**figures, "queue_cap": cap, "program_s": round(elapsed, 2)})


DROPS_PROGRAM = """
    import json, os, time
    from tracehive import HoneyHiveTracer, trace
    from tracehive.sdk import pipeline

    HoneyHiveTracer.init(api_key="k", project="drops")
    ledger = pipeline.get_pipeline(os.environ["HH_API_URL"], "k").ledger

    @trace
    def call(i):
        return i

    for i in range(1000):
        call(i)
    time.sleep(1.0)  # batches run out of retry time meanwhile
    for i in range(1000):
        call(i)
    print(json.dumps(dict(ledger.dropped)))
"""


def test_dropped_spans_are_reported_in_one_line_and_summarised_at_exit(capture: Capture) -> None:
    capture.fail(500, seconds=3600)
    done, _ = run_program(
        DROPS_PROGRAM,
        HH_API_URL=capture.url,
        TRACEHIVE_EXPORT_MAX_RETRY_TIME="0.3",
        TRACEHIVE_EXPORT_BACKOFF_INITIAL="0.05",
        TRACEHIVE_EXPORT_BACKOFF_MAX="0.1",
        TRACEHIVE_MAX_QUEUE_SIZE="200",
        TRACEHIVE_MAX_BATCH_SIZE="50",
        TRACEHIVE_SCHEDULE_DELAY="0.05",
    )
    assert done.returncode == 0, done.stderr
    dropped = json.loads(done.stdout)
    assert dropped[QUEUE_FULL] > 0 and dropped["server answered HTTP 500"] > 0
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # no per-attempt noise from us or from OpenTelemetry
    assert lines[0].startswith("tracehive: dropping spans for ")
    assert lines[1].startswith("tracehive: 2001 spans were not delivered to ")  # 2000 calls, 1 session
    assert sum(1 for _, status in capture.attempts if status == 500) > len(capture.attempts) // 2 > 0
    assert not capture.received()


FORK_PROGRAM = """
    import os, sys, threading, time
    import tracehive
    from tracehive import HoneyHiveTracer, trace
    from tracehive.sdk import pipeline

    HoneyHiveTracer.init(api_key="k", project="fork")
    ledger = pipeline.get_pipeline(os.environ["HH_API_URL"], "k").ledger

    @trace(event_name="step")
    def step(who, i):
        return i

    stop = threading.Event()
    busy_count = []

    def busy():  # keeps the parent tracing and exporting while it forks
        i = 0
        while not stop.is_set():
            step("parent-thread", i)
            i += 1
            time.sleep(0.0005)
        busy_count.append(i)

    thread = threading.Thread(target=busy)
    thread.start()
    for i in range(100):
        step("parent", i)
    children = []
    for mode in ("flush", "atexit", "worker"):
        time.sleep(0.05)
        pid = os.fork()
        if pid == 0:
            for i in range(600):
                step(mode, i)
            if mode == "flush":
                os._exit(0 if tracehive.flush(timeout=10) else 3)
            if mode == "worker":  # no flush: the child's own export thread must send them
                deadline = time.monotonic() + 10
                while ledger.delivered < 600 and time.monotonic() < deadline:
                    time.sleep(0.02)
                os._exit(0 if ledger.delivered >= 600 else 4)
            sys.exit(0)  # the exit flush sends them
        children.append(pid)
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    stop.set()
    thread.join()
    print(statuses, busy_count[0], tracehive.flush(timeout=10))
"""


def test_a_program_that_forks_delivers_every_span_of_parent_and_children_once(capture: Capture) -> None:
    done, elapsed = run_program(FORK_PROGRAM, HH_API_URL=capture.url, TRACEHIVE_SCHEDULE_DELAY="0.2")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    statuses, busy_count, flushed = done.stdout.rsplit(maxsplit=2)
    assert statuses == "[0, 0, 0]" and flushed == "True", done.stdout
    expected = {("parent", i) for i in range(100)} | {("parent-thread", i) for i in range(int(busy_count))}
    expected |= {(mode, i) for mode in ("flush", "atexit", "worker") for i in range(600)}
    assert_each_span_once(capture, expected)
    assert elapsed < 20
