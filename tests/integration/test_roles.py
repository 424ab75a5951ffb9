"""Roles on a real Asterisk: the call matrix the rendered dialplan enforces, and a member
added in /admin who registers and answers a queue call after the reload.

A member's calls run in the context their phone has in Asterisk (read back from Asterisk
itself: `pjsip show endpoint` / `sip show peer`); a test call from that member is a Local
channel into that context, so what is proved is what Asterisk does with the rendered dialplan.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest

from ami.protocol import AmiMessage

from .amiwatch import WAIT_S, AmiWatch, matches
from .people import Console, place_call
from .site import ADMIN, CONSOLE_PASSWORD, Phone, Site, free_udp_port

pytestmark = pytest.mark.asterisk

NEW_MEMBER = "1005"
CONTEXTS = {"1001": "supervisor", "1002": "agents", "1100": "ceo", "1200": "Complaints"}


async def phone_context(site: Site, ami: AmiWatch, extension: str) -> str:
    """The context Asterisk gives calls from this member's phone."""
    if site.driver == "pjsip":
        text = await ami.command(f"pjsip show endpoint {extension}")
    else:
        text = await ami.command(f"sip show peer {extension}")
    match = re.search(r"^\s*context\s*:\s*(\S+)", text, re.M | re.I)
    assert match, text
    return match.group(1)


async def dials_and_is_answered(
    site: Site, ami: AmiWatch, number: str, caller: str, to: str
) -> None:
    """`caller`'s role context dials `to`: Asterisk rings that phone, which answers."""
    context = CONTEXTS[caller]
    call = await place_call(ami, number=number, exten=to, context=context)
    end = await ami.wait_for(matches("DialEnd", Channel=call.near), after=call.mark)
    assert end.get("DialStatus") == "ANSWER", end
    assert end.value("DestChannel").startswith(site.device(to) + "-"), end
    await call.hangup()
    await call.ended()


async def refused(ami: AmiWatch, context: str, extension: str) -> AmiMessage:
    """A call to `extension` in `context` fails: the extension does not exist there."""
    shown = await ami.command(f"dialplan show {extension}@{context}")
    assert "There is no existence" in shown, shown
    response = await ami.originate(
        Channel=f"Local/{extension}@{context}",
        Context="centralita-test-caller",
        Exten="s",
        Priority="1",
        Timeout="10000",
    )
    assert response.get("Response") == "Failure", response
    return response


async def test_the_call_matrix_holds(site: Site, ami: AmiWatch, number: str) -> None:
    for extension, context in CONTEXTS.items():
        assert await phone_context(site, ami, extension) == context, extension
    # agent -> agent: yes.
    await dials_and_is_answered(site, ami, number, "1002", "1003")
    # agent -> CEO: no (the agents' context has no 1100, and agents do not dial out).
    await refused(ami, CONTEXTS["1002"], "1100")
    # CEO -> agent: yes.
    await dials_and_is_answered(site, ami, number, "1100", "1002")
    # Quality -> the complaints box: VoiceMailMain with box 600 preselected; agents cannot.
    call = await place_call(ami, number=number, exten="600", context=CONTEXTS["1200"])
    opened = await ami.wait_for(
        matches("Newexten", Channel=call.near, Context="Complaints", Extension="600"),
        after=call.mark,
    )
    assert (opened.get("Application"), opened.get("AppData")) == (
        "VoiceMailMain",
        "600@VoiceMail",
    )
    await call.hangup()
    await call.ended()
    await refused(ami, CONTEXTS["1002"], "600")
    # Everyone reaches their own voicemail on 2000.
    for context in CONTEXTS.values():
        shown = await ami.command(f"dialplan show 2000@{context}")
        assert "VoiceMailMain(@VoiceMail)" in shown, shown


# --------------------------------------------------------------------------- /admin


class Admin:
    """The admin (the demo's manager) logged in to /admin with a browser's forms."""

    def __init__(self, site: Site, session: aiohttp.ClientSession) -> None:
        self.base = f"http://127.0.0.1:{site.web_port}"
        self.session = session
        self.csrf = ""

    async def login(self) -> None:
        async with self.session.post(
            f"{self.base}/login",
            data={"extension": ADMIN, "password": CONSOLE_PASSWORD},
            headers={"Accept": "application/json", "Origin": self.base},
        ) as response:
            assert response.status == 200, await response.text()
            self.csrf = (await response.json())["csrf"]

    async def version(self, path: str) -> str:
        async with self.session.get(f"{self.base}{path}") as response:
            text = await response.text()
            assert response.status == 200, text
        match = re.search(r'name="version" value="([0-9a-f]{64})"', text)
        assert match, text
        return match.group(1)

    async def post(self, path: str, form_page: str, **fields: Any) -> str:
        data = aiohttp.FormData()
        data.add_field("csrf", self.csrf)
        data.add_field("version", await self.version(form_page))
        data.add_field("reload", "on")
        for name, value in fields.items():
            for one in value if isinstance(value, list) else [value]:
                data.add_field(name, one)
        async with self.session.post(
            f"{self.base}{path}", data=data, headers={"Origin": self.base}
        ) as response:
            text = await response.text()
            assert response.status == 200, text
        # Rendered into the site's folder and reloaded through AMI, all successfully.
        assert 'id="reload" data-ok="true"' in text, text
        return text


async def wait_registered(site: Site, ami: AmiWatch, extension: str) -> None:
    """Until Asterisk has the phone's contact, qualified."""
    if site.driver == "pjsip":
        command = "pjsip show contacts"
        ok = re.compile(rf"^\s*Contact:\s+{extension}/\S+.*\bAvail\b", re.M)
    else:
        command = "sip show peers"
        ok = re.compile(rf"^{extension}(?:/\S+)?\s+127\.0\.0\.1\b.*\bOK\b", re.M)
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not ok.search(text := await ami.command(command)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{extension} never registered:\n{text}")
        await asyncio.sleep(0.2)


async def test_a_member_added_in_admin_registers_and_takes_a_queue_call(
    site: Site, ami: AmiWatch, number: str
) -> None:
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=WAIT_S), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        admin = Admin(site, session)
        await admin.login()
        page = await admin.post(
            "/admin/members",
            "/admin/members/new",
            extension=NEW_MEMBER,
            name="Inès Nouvelle",
            role="agent",
            queues=["support-fr"],  # with 1004, who has no phone
            language="fr",
            voicemail="on",
            password=CONSOLE_PASSWORD,
        )
        # Applied to the running server at once (centralita/live.py): no restart.
        assert 'id="applied"' in page and 'id="pending-changes"' not in page
        # The page is in the admin's language (French in the demo), so the secret is
        # found by the banner's id and the extension, not by its English words.
        found = re.search(rf'id="sip-secret">[^<]*\b{NEW_MEMBER}\b[^<]*<code>([^<]+)</code>', page)
        assert found, page
        phone = Phone(NEW_MEMBER, found.group(1), free_udp_port(), free_udp_port())
        try:
            phone.start(site.sip_port, site.root)
            await wait_registered(site, ami, NEW_MEMBER)
            assert await phone_context(site, ami, NEW_MEMBER) == "agents"
            # The new member logs in to the console with no restart of Centralita, in
            # support-fr as Asterisk's QueueStatus (asked again after the reload) has it.
            async with Console(site, NEW_MEMBER) as console:
                state = await console.wait_state(
                    lambda s: any(q["queue"] == "support-fr" and q["member"] for q in s["queues"])
                )
                assert state["extension"] == NEW_MEMBER
                # A French caller: support-fr now has someone to answer, whose screen pops.
                call = await place_call(ami, number=number)
                await call.listening("STREAM FILE")
                await call.press("3")
                connect = await ami.wait_for(
                    matches("AgentConnect", Channel=call.near), after=call.mark
                )
                assert connect.get("Queue") == "support-fr"
                assert connect.value("DestChannel").startswith(site.device(NEW_MEMBER) + "-")
                answered = await console.wait_for("call.answered", call.linkedid)
                assert (answered["agent"], answered["queue"]) == (NEW_MEMBER, "support-fr")
                await call.hangup()
                await call.ended()
        finally:
            phone.stop()
            # Back to the site the other tests expect: support-fr without a phone.
            await admin.post(f"/admin/members/{NEW_MEMBER}/remove", "/admin")
        members = await ami.command("queue show support-fr")
        assert NEW_MEMBER not in members, members
