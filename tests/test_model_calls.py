"""Model calls rolled up per session, through a real server loaded by our SDK: the filter language
on tokens and cost with user properties, group-by and Users figures, the OpenAPI schema, and the
dashboard (in Debian's Chromium) showing a model event's conversation and the session's totals."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from tests.browser import follow, log_in, needs_chromium
from tests.conftest import Server, loaded_server
from tests.test_dashboard_browser import ARTIFACTS

PROJECT = "llm-app"
RTL = "\u202eevil"  # a right-to-left override: must stay inside its own message
LOAD = """
from tracehive import HoneyHiveTracer, trace

def chat(tracer, question, prompt_tokens, cost, reply):
    @trace(event_type="model", event_name="chat.completions")
    def call():
        metadata = {"prompt_tokens": prompt_tokens, "completion_tokens": 20, "total_tokens": prompt_tokens + 20}
        if cost is not None:
            metadata["cost"] = cost
        tracer.enrich_span(
            metadata=metadata,
            # A call without a cost is of a model the price table lacks, so its cost stays unknown.
            config={"model": "gpt-4o-mini" if cost is not None else "house-model-7b", "provider": "openai",
                    "hyperparameters": {"temperature": 0.2}},
            inputs={"chat_history": [
                {"role": "system", "content": "You answer about hiking."},
                {"role": "user", "content": question},
            ]},
            outputs={"role": "assistant", "content": reply, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "search_trails", "arguments": '{"q": "boots"}'}}
            ]},
        )
        return reply
    return call()

for user, plan, calls in [
    ("u-big", "premium", [(100, 0.002), (30, 0.001)]),
    ("u-small", "premium", [(10, 0.0005)]),
    ("u-free", "free", [(40, None)]),
]:
    tracer = HoneyHiveTracer.init(session_name=f"chat {user}")
    tracer.enrich_session(user_properties={"user_id": user, "plan": plan})
    for n, (tokens, cost) in enumerate(calls):
        chat(tracer, f"question {n} <script>alert(1)</script> RTL", tokens, cost, f"answer {n} from the model")
    tracer.flush()
""".replace("RTL", RTL)


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with loaded_server(tmp_path_factory.mktemp("model-calls"), [(LOAD, PROJECT)]) as running:
        yield running


def _sessions(server: Server, text: str) -> list[dict]:
    return server.get("/api/v1/sessions", project=PROJECT, filter=text)["sessions"]


def test_a_session_rolls_up_its_model_calls(llm):
    (big,) = _sessions(llm, 'user_id = "u-big"')
    assert (big["model_calls"], big["prompt_tokens"], big["completion_tokens"]) == (2, 130, 40)
    assert (big["total_tokens"], big["cost"]) == (170, 0.003)
    (free,) = _sessions(llm, 'user_id = "u-free"')
    assert (free["model_calls"], free["total_tokens"], free["cost"]) == (1, 60, None)


def test_tokens_and_cost_filter_with_user_properties(llm):
    found = _sessions(llm, 'total_tokens > 100 and user_properties.plan = "premium"')
    assert [s["user_properties"]["user_id"] for s in found] == ["u-big"]
    assert [s["user_properties"]["user_id"] for s in _sessions(llm, "cost > 0.001")] == ["u-big"]
    assert [s["user_properties"]["user_id"] for s in _sessions(llm, "cost = null")] == ["u-free"]


def test_group_by_plan_reports_tokens_and_cost(llm):
    answer = llm.get("/api/v1/groups", project=PROJECT, by="user_properties.plan")
    groups = {g["value"]: g for g in answer["groups"]}
    premium, free = groups["premium"], groups["free"]
    assert (premium["sessions"], premium["model_calls"], premium["total_tokens"]) == (2, 3, 200)
    assert (premium["cost"], premium["avg_cost"], premium["avg_total_tokens"]) == (0.0035, 0.00175, 100.0)
    assert (free["total_tokens"], free["cost"], free["avg_cost"]) == (60, None, None)
    series = llm.get("/api/v1/timeseries", project=PROJECT, split_by="user_properties.plan")
    assert sum(p["cost"] or 0 for p in series["points"] if p["value"] == "premium") == pytest.approx(0.0035)


def test_users_show_their_tokens_and_cost(llm):
    users = {u["user_id"]: u for u in llm.get("/api/v1/users", project=PROJECT)["users"]}
    assert (users["u-big"]["total_tokens"], users["u-big"]["cost"]) == (170, 0.003)
    assert (users["u-free"]["total_tokens"], users["u-free"]["cost"]) == (60, None)


def test_openapi_describes_the_roll_ups(llm):
    spec = llm.get("/openapi.json")
    (described,) = [p["description"] for p in spec["paths"]["/api/v1/sessions"]["get"]["parameters"]
                    if p["name"] == "filter"]  # fmt: skip
    assert "total_tokens" in described and "cost" in described
    schemas = spec["components"]["schemas"]
    for name in ("Session", "SessionWithEvents", "Group", "User", "Point"):
        assert {"model_calls", "total_tokens", "cost"} <= set(schemas[name]["properties"]), name
    assert {"avg_cost", "avg_total_tokens"} <= set(schemas["Group"]["properties"])


@needs_chromium
def test_dashboard_shows_the_conversation_and_the_totals(browser, llm):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=llm.url)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(tab, llm.key)
    tab.goto(f"/?project={PROJECT}")
    header = tab.locator("table.sessions thead").inner_text()
    assert "Tokens" in header and "Cost" in header
    big_row = tab.locator("table.sessions tbody tr", has_text="chat u-big").inner_text()
    assert "170" in big_row and "$0.003" in big_row
    tab.goto(f"/?project={PROJECT}&split=user_properties.plan")
    cost_chart = tab.locator("figure.chart", has_text="Cost of model calls")
    assert cost_chart.locator("ul.legend li").all_inner_texts() == ["premium"]  # free has no known cost
    assert cost_chart.locator("svg circle, svg polyline").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "model-sessions.png"), full_page=True)
    follow(tab.locator("a.session-link", has_text="chat u-big"))
    tab.wait_for_url(re.compile(r"/sessions/"))
    assert tab.locator(".session-head dd.model-calls").inner_text() == "2"
    assert tab.locator(".session-head dd.tokens").inner_text() == "170"
    assert tab.locator(".session-head dd.cost").inner_text() == "$0.003"
    assert tab.locator("ol.tree .name small.tokens").all_inner_texts() == ["120 tokens", "50 tokens"]
    follow(tab.locator("ol.tree a", has_text="chat.completions").first)
    call = tab.locator('section[data-section="Model call"]')
    assert call.locator("dd.model").inner_text() == "gpt-4o-mini"
    assert call.locator("dd.provider").inner_text() == "openai"
    assert call.locator("dd.cost").inner_text() == "$0.002"
    assert "temperature" in call.locator("dl.parameters").inner_text()
    messages = call.locator("ol.conversation > li.msg")
    assert [m.get_attribute("data-role") for m in messages.all()] == ["system", "user", "assistant"]
    question = messages.nth(1)
    assert question.locator("pre.content").inner_text() == f"question 0 <script>alert(1)</script> {RTL}"
    assert question.locator("pre.content > bdi").count() == 1
    reply = messages.nth(2)
    assert "answer 0 from the model" in reply.locator("pre.content").inner_text()
    assert reply.locator(".tool-name").inner_text() == "search_trails"
    assert reply.locator("pre.arguments").inner_text() == '{"q": "boots"}'
    tab.screenshot(path=str(ARTIFACTS / "model-call.png"), full_page=True)
    tab.goto(f"/users?project={PROJECT}")
    user = tab.locator("table.users tbody tr", has_text="u-big")
    assert (user.locator("td.tokens").inner_text(), user.locator("td.cost").inner_text()) == ("170", "$0.003")
    assert dialogs == []
    context.close()
