"""Flow `customer-id` end to end: the Asterisk simulator calls the FastAGI server, whose flow
asks a real aiohttp server on loopback playing the CRM; each test asserts where the call went.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from conftest import FlowEnv, make_settings, start_flow_env
from prometheus_client import REGISTRY
from test_crm import FakeClock, FakeCrm, Handler, answer, raw

from agi.testing import Caller, CallResult, place_call
from centralita.crm import CrmClient

SUCCESS = "queue:support-en"
FAILURE = "voicemail:600"
ID = "123456"
GOOD_KEYS = [f"{ID}#", "1"]

SECOND_NODE = """
[[customer_id]]
name = "second-check"
id = 7
mode = "none"
min_digits = 4
max_digits = 8
timeout_s = 5
retries = 2
success = "queue:support-fr"
failure = "hangup"
"""


def node_config(
    url: str,
    mode: str = "crm-bool",
    crm_timeout_s: float = 3.0,
    breaker_failures: int = 5,
) -> Callable[[str], str]:
    """Edits of the demo config: the node asks `url` in `mode`, failure is a voicemail box."""

    def edit(text: str) -> str:
        text = text.replace('url = "http://127.0.0.1:8090/customer"', f'url = "{url}"')
        text = text.replace('mode = "crm-bool"', f'mode = "{mode}"')
        text = text.replace('failure = "ivr:main"', f'failure = "{FAILURE}"')
        text = text.replace("timeout_s = 3.0", f"timeout_s = {crm_timeout_s}")
        text = text.replace("breaker_failures = 5", f"breaker_failures = {breaker_failures}")
        return text + SECOND_NODE

    return edit


@asynccontextmanager
async def running(
    tmp_path: Path,
    fake: FakeCrm,
    mode: str = "crm-bool",
    *,
    crm_timeout_s: float = 3.0,
    breaker_failures: int = 5,
    clock: FakeClock | None = None,
) -> AsyncIterator[FlowEnv]:
    """The flow server with a real CrmClient pointed at `fake`."""
    edit = node_config(fake.url, mode, crm_timeout_s, breaker_failures)
    settings = make_settings(tmp_path, edit)
    client = CrmClient(settings.site.crm, clock=clock or FakeClock())
    async with client:
        async for env in start_flow_env(settings, client):
            yield env


@pytest.fixture
async def fake() -> AsyncIterator[FakeCrm]:
    async with FakeCrm() as crm:
        yield crm


async def call(
    env: FlowEnv, keys: Sequence[str | None], node: str = "vip-check", **kw: object
) -> CallResult:
    caller = Caller(script="customer-id", args=[node], keys=keys, **kw)  # type: ignore[arg-type]
    result = await place_call("127.0.0.1", env.port, caller)
    assert result.error is None, result.error
    return result


def outcome(node: str, name: str) -> float:
    value = REGISTRY.get_sample_value(
        "centralita_customer_id_total", {"node": node, "outcome": name}
    )
    return value or 0.0


# -- the dialogue ---------------------------------------------------------------------------


async def test_confirmed_id_is_read_back_sent_and_routed(tmp_path: Path, fake: FakeCrm) -> None:
    async with running(tmp_path, fake) as env:
        result = await call(env, GOOD_KEYS)
    assert result.commands[:5] == [
        "ANSWER",
        "GET DATA centralita/enter-customer-id 10000 7",
        'STREAM FILE centralita/customer-id-is ""',
        'SAY DIGITS 123456 ""',
        "GET DATA centralita/confirm 10000 1",
    ]
    assert result.heard == [
        "centralita/enter-customer-id",
        "centralita/customer-id-is",
        f"digits:{ID}",
        "centralita/confirm",
    ]
    assert result.variables["CENTRALITA_CUSTOMER_ID"] == ID
    assert result.route == SUCCESS
    # The CRM got exactly the OMniLeads request, once.
    assert len(fake.seen) == 1
    assert fake.seen[0].method == "POST"
    assert fake.seen[0].body == b"idContact=123456"
    assert fake.seen[0].headers["User-Agent"] == "OMniLeads"
    # The ID is on the channel before the route (the screen pop can show it meanwhile).
    names = [name for name, _ in result.variables_set]
    assert names == ["CENTRALITA_CUSTOMER_ID", "CENTRALITA_ROUTE"]


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        (["12345#", *GOOD_KEYS], "one digit short"),
        (["1234567", *GOOD_KEYS], "one digit long: 7 digits are read, refused"),
        ([None, *GOOD_KEYS], "silence"),
        (["#", *GOOD_KEYS], "# alone"),
        (["12*456#", *GOOD_KEYS], "a star"),
    ],
)
async def test_a_bad_entry_is_asked_again(
    tmp_path: Path, fake: FakeCrm, keys: list[str | None], why: str
) -> None:
    async with running(tmp_path, fake) as env:
        result = await call(env, keys)
    assert result.heard[:3] == [
        "centralita/enter-customer-id",
        "centralita/invalid-option",
        "centralita/enter-customer-id",
    ], why
    assert result.route == SUCCESS
    assert [s.body for s in fake.seen] == [b"idContact=123456"]


@pytest.mark.parametrize("confirm", ["2", None, "9"])
async def test_an_unconfirmed_id_is_asked_again(
    tmp_path: Path, fake: FakeCrm, confirm: str | None
) -> None:
    async with running(tmp_path, fake) as env:
        result = await call(env, ["654321#", confirm, *GOOD_KEYS])
    assert result.heard.count("digits:654321") == 1
    assert result.heard.count(f"digits:{ID}") == 1
    assert result.variables["CENTRALITA_CUSTOMER_ID"] == ID
    assert [s.body for s in fake.seen] == [b"idContact=123456"]  # only the confirmed one
    assert result.route == SUCCESS


async def test_retries_exhausted_go_to_failure_without_asking(
    tmp_path: Path, fake: FakeCrm
) -> None:
    async with running(tmp_path, fake) as env:
        before = outcome("vip-check", "no-id")
        retries = env.settings.site.node("vip-check").retries  # type: ignore[union-attr]
        result = await call(env, ["12#", "654321#", "2", None])
    assert retries == 3
    assert result.heard.count("centralita/enter-customer-id") == 3
    assert result.route == FAILURE
    assert "CENTRALITA_CUSTOMER_ID" not in result.variables
    assert fake.seen == []
    assert outcome("vip-check", "no-id") == before + 1


async def test_mode_none_needs_no_crm(tmp_path: Path, fake: FakeCrm) -> None:
    async with running(tmp_path, fake) as env:
        result = await call(env, ["4321#", "1"], node="second-check")
        failed = await call(env, ["1#", "2#"], node="second-check")
    assert result.route == "queue:support-fr"
    assert result.variables["CENTRALITA_CUSTOMER_ID"] == "4321"
    assert failed.route == "hangup"
    assert fake.seen == []


async def test_unknown_node_goes_to_the_server_fallback(
    tmp_path: Path, fake: FakeCrm, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, fake) as env:
        result = await call(env, GOOD_KEYS, node="no-such-node")
        fallback = str(env.settings.server.fallback)
    assert result.route == fallback == "queue:support-en"
    assert result.heard == []
    assert fake.seen == []
    assert any("no-such-node" in r.getMessage() for r in caplog.records)


# -- every CRM reply form -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "handler", "route"),
    [
        ("crm-bool", answer("true"), SUCCESS),
        ("crm-bool", answer("false"), FAILURE),
        ("crm-bool", answer("1,3"), FAILURE),  # a destination means nothing in crm-bool
        ("crm-bool", answer("TRUE"), FAILURE),
        ("crm-destination", answer("true"), SUCCESS),
        ("crm-destination", answer("false"), FAILURE),
        ("crm-destination", answer("1,1"), "queue:support-ar"),
        ("crm-destination", answer("1,3"), "queue:support-fr"),
        ("crm-destination", answer("2,1"), "time:office-hours"),
        ("crm-destination", answer("3,1"), "ivr:main"),
        ("crm-destination", answer("5,0"), "hangup"),
        ("crm-destination", answer("9,7"), "customer-id:second-check"),
        ("crm-destination", answer("-1,2"), FAILURE),
        ("crm-destination", answer("1,-2"), FAILURE),
        ("crm-destination", answer("1,abc"), FAILURE),
        ("crm-destination", answer("1,99"), FAILURE),
        ("crm-destination", answer("9,99"), FAILURE),
        ("crm-destination", answer("4,1"), FAILURE),
        ("crm-destination", answer("1,2,3"), FAILURE),
        ("crm-destination", answer("1,1", status="fail"), FAILURE),
        ("crm-bool", answer("true", status="fail"), FAILURE),
        ("crm-bool", raw("<html><h1>Login</h1></html>"), FAILURE),
        ("crm-destination", raw("<html><h1>Login</h1></html>"), FAILURE),
        ("crm-bool", raw("Internal Server Error", status=500), FAILURE),
        ("crm-destination", raw('{"status": "ok", "destination": "1,1"}', status=500), FAILURE),
    ],
)
async def test_each_reply_form(
    tmp_path: Path, fake: FakeCrm, mode: str, handler: Handler, route: str
) -> None:
    fake.reply = handler
    async with running(tmp_path, fake, mode) as env:
        result = await call(env, GOOD_KEYS)
    assert result.route == route
    assert result.variables["CENTRALITA_CUSTOMER_ID"] == ID
    assert len(fake.seen) == 1  # never retried while the caller waits


async def test_unknown_destination_is_logged_and_counted(
    tmp_path: Path, fake: FakeCrm, caplog: pytest.LogCaptureFixture
) -> None:
    fake.reply = answer("1,99")
    async with running(tmp_path, fake, "crm-destination") as env:
        before = outcome("vip-check", "bad-destination")
        result = await call(env, GOOD_KEYS)
    assert result.route == FAILURE
    assert outcome("vip-check", "bad-destination") == before + 1
    assert any("'1,99'" in r.getMessage() for r in caplog.records)


async def test_a_crm_slower_than_the_timeout(tmp_path: Path, fake: FakeCrm) -> None:
    fake.reply = fake.slow(answer("true"))
    async with running(tmp_path, fake, crm_timeout_s=0.2) as env:
        before = outcome("vip-check", "crm-error")
        result = await call(env, GOOD_KEYS)
    assert result.route == FAILURE
    assert len(fake.seen) == 1
    assert outcome("vip-check", "crm-error") == before + 1


@pytest.mark.parametrize("declare_length", [False, True])
async def test_a_10_mb_reply(tmp_path: Path, fake: FakeCrm, declare_length: bool) -> None:
    fake.reply = fake.huge(declare_length=declare_length)
    async with running(tmp_path, fake, "crm-destination") as env:
        result = await call(env, GOOD_KEYS)
    assert result.route == FAILURE


async def test_crm_down(tmp_path: Path, fake: FakeCrm) -> None:
    async with running(tmp_path, fake) as env:
        await fake.__aexit__(None, None, None)  # nobody listens on the CRM port any more
        result = await call(env, GOOD_KEYS)
    assert result.route == FAILURE


# -- hangup while the CRM is asked ----------------------------------------------------------


async def test_caller_hangs_up_while_the_crm_is_asked(
    tmp_path: Path, fake: FakeCrm, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller hangs up the moment the CRM is asked, and the CRM holds its answer until the
    server has seen Asterisk's HANGUP line (sent on its own when the channel hangs up,
    res_agi.c:4362-4375); the answer is then dropped."""
    caplog.set_level(logging.DEBUG)
    env_holder: list[FlowEnv] = []
    answered = asyncio.Event()
    crm_asked = asyncio.Event()

    async def held(request: object) -> object:
        crm_asked.set()
        env = env_holder[0]
        for _ in range(1000):  # bounded: at most 10 s
            if env.server.sessions and all(s.hung_up for s in env.server.sessions):
                break
            await asyncio.sleep(0.01)
        answered.set()
        return await answer("true")(request)  # type: ignore[arg-type]

    fake.reply = held  # type: ignore[assignment]
    async with running(tmp_path, fake, crm_timeout_s=15.0) as env:
        env_holder.append(env)
        result = await call(env, GOOD_KEYS, hangup_on=crm_asked)
        await asyncio.wait_for(answered.wait(), 15)
        # The flow task has ended quietly.
        await asyncio.wait_for(_no_tasks(env), 5)
    assert result.caller_hung_up
    assert len(fake.seen) == 1  # the CRM was asked...
    assert "CENTRALITA_ROUTE" not in result.variables  # ...and its answer dropped
    assert result.variables["CENTRALITA_CUSTOMER_ID"] == ID
    assert result.commands[-1].startswith("SET VARIABLE CENTRALITA_CUSTOMER_ID")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _no_tasks(env: FlowEnv) -> None:
    if env.server.tasks:
        await asyncio.wait(set(env.server.tasks))


@pytest.mark.parametrize("at", [1, 2, 3, 4])
async def test_caller_hangs_up_during_the_dialogue(
    tmp_path: Path, fake: FakeCrm, at: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, fake) as env:
        result = await call(env, GOOD_KEYS, hangup_at=at)
    assert result.caller_hung_up
    assert result.route is None
    assert fake.seen == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- circuit breaker through calls ----------------------------------------------------------


async def test_breaker_opens_and_closes_across_calls(tmp_path: Path, fake: FakeCrm) -> None:
    clock = FakeClock()
    fake.reply = raw("down", status=503)
    async with running(tmp_path, fake, breaker_failures=2, clock=clock) as env:
        cooldown = env.settings.site.crm.breaker_cooldown_s
        for _ in range(2):
            assert (await call(env, GOOD_KEYS)).route == FAILURE
        assert len(fake.seen) == 2
        # Open: the next caller goes straight to failure, the CRM is not asked.
        fake.reply = answer("true")
        result = await call(env, GOOD_KEYS)
        assert result.route == FAILURE
        assert len(fake.seen) == 2
        # After the cooldown one request goes through; it succeeds and the circuit closes.
        clock.now += cooldown
        assert (await call(env, GOOD_KEYS)).route == SUCCESS
        assert (await call(env, GOOD_KEYS)).route == SUCCESS
        assert len(fake.seen) == 4
