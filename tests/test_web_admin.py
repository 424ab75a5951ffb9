"""/admin over HTTP on the real app: admins only (checked on the server), every save through
the same validation as the CLI, nothing written on an error, conflicts detected by the
file's hash, and adding then removing a member gives the TOML file back byte for byte."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
from admin_support import ADMIN, admin_env, form_version, post_form, second_login
from test_web_support import PASSWORD, WebEnv, console_env, receive_past_state

from ami.fake_queues import FakeMember
from centralita import agents_admin
from centralita.agentprefs import save_preferences
from centralita.agents_admin import MemberFields
from centralita.keys import AGENT_STATES, WEBHOOKS
from centralita.settings import Webhook, load_settings
from centralita.web import close_ended_sessions
from centralita.web.auth import WS_CLOSE_LOGGED_OUT


async def add_ana(
    client: aiohttp.ClientSession, csrf: str, **fields: str | list[str]
) -> tuple[int, str]:
    """Add member 1102, Ana Gil, from the form (console password `ana-console-pw`)."""
    version = await form_version(client, "/admin/members/new")
    return await post_form(
        client,
        "/admin/members",
        csrf,
        version,
        extension="1102",
        name="Ana Gil",
        language="en",
        voicemail="on",
        password="ana-console-pw",
        **fields,
    )


async def test_only_admins_reach_admin_pages_and_posts(tmp_path: Path) -> None:
    async with admin_env(tmp_path) as env:
        original = env.settings.file.read_bytes()  # type: ignore[union-attr]
        for extension in ("1001", "1002", "1100", "1200"):  # supervisor, agent, ceo, quality
            async with env.session() as client:
                csrf = await env.login(client, extension)
                for path in (
                    "/admin",
                    "/admin/members/new",
                    "/admin/members/1002",
                    "/admin/audit",
                ):
                    async with client.get(path, allow_redirects=False) as resp:
                        assert resp.status == 403, (extension, path)
                for path, data in (
                    ("/admin/members", {"extension": "1300", "name": "X", "role": "agent"}),
                    ("/admin/members/1002", {"name": "X"}),
                    ("/admin/members/1002/remove", {}),
                    ("/admin/queues/support-en", {"strategy": "ringall", "timeout_s": "5"}),
                ):
                    async with client.post(path, data={**data, "csrf": csrf}) as resp:
                        assert resp.status == 403, (extension, path)
        async with env.session() as client:  # nobody logged in
            async with client.get("/admin", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/login"
            async with client.post("/admin/members/1002/remove", data={}) as resp:
                assert resp.status == 401
        async with env.session() as client:
            await env.login(client, ADMIN)
            async with client.get("/admin") as resp:
                assert resp.status == 200
                assert 'id="member-1200"' in await resp.text()
        assert env.settings.file.read_bytes() == original  # type: ignore[union-attr]


async def test_adding_then_removing_a_member_gives_the_file_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    async with admin_env(tmp_path) as env:
        config = env.settings.file
        assert config is not None
        original = config.read_bytes()
        async with env.session() as client:
            csrf = await env.login(client, ADMIN)
            status, html = await add_ana(client, csrf, role="manager")
            assert status == 200, html
            secret = re.search(r"SIP secret for 1102: <code>([^<]+)</code>", html)
            assert secret is not None
            member = load_settings(config).site.member("1102")
            assert member is not None and member.secret == secret.group(1)
            assert member.role == "manager"
            # The diff of each changed Asterisk file, the new secret masked there.
            assert 'data-file="pjsip.conf"' in html and 'data-file="extensions.conf"' in html
            assert "+exten =&gt; 1102,1,Dial(PJSIP/1102,20,tTxX)" in html
            assert secret.group(1) not in html.split('id="sip-secret"')[1].split("</p>", 1)[1]
            assert await env.store.verify_agent_password("1102", "ana-console-pw")

            version = await form_version(client, "/admin")
            status, html = await post_form(client, "/admin/members/1102/remove", csrf, version)
            assert status == 200, html
        assert config.read_bytes() == original
        assert not await env.store.verify_agent_password("1102", "ana-console-pw")
        # Both actions are in the audit log: who, when, what changed in the config.
        removed, added = await env.store.list_audit()
        assert (added.actor, added.action, added.subject) == (ADMIN, "add member", "1102")
        assert (removed.actor, removed.action, removed.subject) == (ADMIN, "remove member", "1102")
        assert '+extension = "1102"' in added.changes and '+role = "manager"' in added.changes
        assert "+secret = ********" in added.changes  # the secret itself is not kept
        assert secret.group(1) not in added.changes
        assert '-extension = "1102"' in removed.changes
        async with env.session() as client:
            await env.login(client, ADMIN)
            async with client.get("/admin/audit") as resp:
                page = await resp.text()
        assert page.index(f'id="audit-{removed.id}"') < page.index(f'id="audit-{added.id}"')
        assert "remove member" in page and "+role = &#34;manager&#34;" in page


async def test_a_refused_save_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    async with admin_env(tmp_path) as env:
        config = env.settings.file
        assert config is not None
        original = config.read_bytes()
        async with env.session() as client:
            csrf = await env.login(client, ADMIN)
            version = await form_version(client, "/admin/members/1100")
            # The CEO's role takes no queue calls: the model refuses, naming members[3].queues.
            status, html = await post_form(
                client,
                "/admin/members/1100",
                csrf,
                version,
                name="Carmen Ruiz",
                role="ceo",
                queues=["support-en"],
                language="en",
                voicemail="on",
            )
            assert status == 422
            assert re.search(r'id="error-queues"[^>]*>[^<]*members\[3\]\.queues: role', html)
            status, html = await post_form(
                client, "/admin/members", csrf, version, extension="2000", name="X", role="agent"
            )
            assert status == 422
            assert 'id="error-extension"' in html and "voicemail menu number" in html
            assert 'value="X"' in html  # what the admin typed is kept
            status, html = await post_form(
                client, "/admin/members/1002", csrf, version, name="J", role="agent", password="x"
            )
            assert status == 422 and 'id="error-password"' in html
            status, html = await post_form(
                client, "/admin/queues/support-en", csrf, version, strategy="loudest", timeout_s="5"
            )
            assert status == 422 and 'id="error-strategy"' in html
        assert config.read_bytes() == original


async def test_two_admins_editing_at_once_the_second_save_is_refused(tmp_path: Path) -> None:
    async with admin_env(tmp_path) as env:
        config = env.settings.file
        assert config is not None
        async with env.session() as first, env.session() as second:
            csrf1 = await env.login(first, ADMIN)
            csrf2 = await second_login(env, second, ADMIN)
            v1 = await form_version(first, "/admin/members/1002")
            v2 = await form_version(second, "/admin/members/1002")
            assert v1 == v2
            status, _ = await post_form(
                first,
                "/admin/members/1002",
                csrf1,
                v1,
                name="John Smith",
                role="agent",
                queues=["support-en", "support-fr"],
                language="en",
                voicemail="on",
            )
            assert status == 200
            after_first = config.read_bytes()
            status, html = await post_form(
                second,
                "/admin/members/1002",
                csrf2,
                v2,
                name="Johnny",
                role="agent",
                queues=["support-en"],
                language="en",
                voicemail="on",
            )
            assert status == 409 and 'id="conflict"' in html
            assert config.read_bytes() == after_first
            member = load_settings(config).site.member("1002")
            assert member is not None and member.queues == ("support-en", "support-fr")


async def test_saves_render_into_conf_dir_and_reload_through_ami(tmp_path: Path) -> None:
    conf_dir = tmp_path / "asterisk"
    async with admin_env(tmp_path, conf_dir=conf_dir) as env:
        async with env.session() as client:
            csrf = await env.login(client, ADMIN)
            version = await form_version(client, "/admin")
            status, html = await post_form(
                client,
                "/admin/queues/support-fr",
                csrf,
                version,
                strategy="ringall",
                timeout_s="25",
                reload="on",
            )
            assert status == 200, html
        queues = (conf_dir / "queues.conf").read_text(encoding="utf-8")
        assert "[support-fr]\nstrategy = ringall" in queues
        extensions = (conf_dir / "extensions.conf").read_text(encoding="utf-8")
        assert "Queue(support-fr,tx,,,25)" in extensions
        assert "Set(CENTRALITA_SURVEY=0)" in extensions  # survey unticked
        # The reload went to AMI as the reload user (the fake AMI knows only `centralita`).
        assert re.search(r'id="reload" data-ok="false">[^<]*centralita-reload', html)
        assert 'data-file="queues.conf"' in html


def _queue_block(extensions: str, queue: str) -> str:
    """The lines of a queue's extension in the rendered extensions.conf."""
    start = extensions.index(f"exten => {queue},1,")
    end = extensions.find("\nexten => ", start + 1)
    return extensions[start:end]


def _queue_form(page: str, queue: str) -> str:
    """A queue's form on /admin."""
    start = page.index(f'id="queue-{queue}"')
    return page[start : page.index("</form>", start)]


async def test_a_queue_s_recording_is_switched_off_and_on_from_the_form(tmp_path: Path) -> None:
    """The queue form's `record calls` box: unticked writes `record = false` and the rendered
    dialplan stops calling MixMonitor for that queue only; ticked again gives it back."""
    conf_dir = tmp_path / "asterisk"
    async with admin_env(tmp_path, conf_dir=conf_dir) as env:
        config = env.settings.file
        assert config is not None
        async with env.session() as client:
            csrf = await env.login(client, ADMIN)
            async with client.get("/admin") as resp:
                page = await resp.text()
            assert page.count('name="record" checked') == page.count('name="strategy"') > 1
            fields = {"strategy": "ringall", "timeout_s": "25", "survey": "on"}
            version = await form_version(client, "/admin")
            status, html = await post_form(
                client, "/admin/queues/support-fr", csrf, version, **fields
            )
            assert status == 200, html
            site = load_settings(config).site
            assert {q.name: q.record for q in site.queues} == {
                "support-ar": True,
                "support-en": True,
                "support-fr": False,
            }
            extensions = (conf_dir / "extensions.conf").read_text(encoding="utf-8")
            assert _queue_block(extensions, "support-fr").count("Gosub(centralita-record") == 0
            assert _queue_block(extensions, "support-en").count("Gosub(centralita-record") == 1
            async with client.get("/admin") as resp:
                assert 'id="queue-support-fr"' in (page := await resp.text())
            assert 'name="record" checked' not in _queue_form(page, "support-fr")

            version = await form_version(client, "/admin")
            status, html = await post_form(
                client, "/admin/queues/support-fr", csrf, version, **fields, record="on"
            )
            assert status == 200, html
            queue = load_settings(config).site.queue("support-fr")
            assert queue is not None and queue.record is True
            extensions = (conf_dir / "extensions.conf").read_text(encoding="utf-8")
            assert _queue_block(extensions, "support-fr").count("Gosub(centralita-record") == 1


async def test_the_page_of_a_removed_member_is_not_found(tmp_path: Path) -> None:
    async with admin_env(tmp_path) as env:
        async with env.session() as client:
            await env.login(client, ADMIN)
            async with client.get("/admin/members/1999") as resp:
                assert resp.status == 404


async def can_log_in(env: WebEnv, extension: str, password: str) -> bool:
    async with env.session() as client:
        async with client.post(
            "/login",
            data={"extension": extension, "password": password},
            headers={"Accept": "application/json"},
        ) as resp:
            return resp.status == 200


async def test_a_save_applies_at_once_to_logins_roles_and_the_agents_queues(
    tmp_path: Path,
) -> None:
    """No restart: a member added in /admin logs in at once, with the queues the form gave;
    a role changed to the admin's opens /admin at once; a removed member cannot log in."""
    async with admin_env(tmp_path) as env:
        await env.wait_ami()
        # Asterisk's reload of the rendered queues.conf makes 1102 a static member, with no
        # event: only the QueueStatus a reload asks for again tells the console.
        queue = env.ami.queues.queue("support-en")
        assert queue is not None
        queue.members["pjsip/1102"] = FakeMember("PJSIP/1102", "Ana Gil", "PJSIP/1102", False)
        async with env.session() as client:
            csrf = await env.login(client, ADMIN)
            status, html = await add_ana(client, csrf, role="agent", queues=["support-en"])
            assert status == 200, html
            assert 'id="applied"' in html
            assert 'id="pending-changes"' not in html and 'id="awaiting-restart"' not in html
            assert await can_log_in(env, "1102", "ana-console-pw")
            states = env.app[AGENT_STATES]
            assert states.allowed("1102")[:1] == ("support-en",)
            for _ in range(200):  # until the QueueStatus asked again is in, not a time limit
                if states.state("1102")["queues"][0]["member"]:
                    break
                await asyncio.sleep(0.05)
            assert states.state("1102")["queues"][0] == {
                "queue": "support-en",
                "member": True,
                "dynamic": False,
                "paused": False,
                "reason": "",
                "status": "idle",
            }

            await env.store.set_agent_password("1002", PASSWORD)
            async with env.session() as agent:
                await second_login(env, agent, "1002")
                async with agent.get("/admin", allow_redirects=False) as resp:
                    assert resp.status == 403
                version = await form_version(client, "/admin/members/1002")
                status, html = await post_form(
                    client,
                    "/admin/members/1002",
                    csrf,
                    version,
                    name="John S.",
                    role="manager",
                    language="en",
                    voicemail="on",
                )
                assert status == 200, html
                async with agent.get("/admin", allow_redirects=False) as resp:
                    assert resp.status == 200  # the same session, its new role's console

            version = await form_version(client, "/admin")
            status, html = await post_form(client, "/admin/members/1102/remove", csrf, version)
            assert status == 200, html
            assert not await can_log_in(env, "1102", "ana-console-pw")
            assert env.app[AGENT_STATES].allowed("1102") == ()


async def test_a_hand_edit_is_listed_until_applied_and_restart_only_parts_are_named(
    tmp_path: Path,
) -> None:
    """A hand edit of the file is not used until a reload: /admin lists it with a button
    that applies it (as SIGHUP does); a change that needs a restart is named apart."""
    async with admin_env(tmp_path) as env:
        config = env.settings.file
        assert config is not None
        text = config.read_text(encoding="utf-8")
        fields = MemberFields(name="Ana Gil", role="agent", queues=["support-en"], secret="s" * 12)
        hook = '\n[[webhooks]]\nurl = "http://127.0.0.1:9/hook"\naccount_id = "acct-9"\n'
        config.write_text(agents_admin.add_member(text, "1102", fields) + hook, encoding="utf-8")
        await env.store.set_agent_password("1102", "ana-console-pw")
        async with env.session() as client:
            csrf = await env.login(client, ADMIN)
            async with client.get("/admin") as resp:
                page = await resp.text()
            assert re.search(r'id="pending-added">[^<]*<span class="mono">1102</span>', page)
            row = page.split('id="member-1102"', 1)[1].split("</tr>", 1)[0]
            assert 'data-pending="added"' in row
            assert 'id="awaiting-restart"' not in page
            assert not await can_log_in(env, "1102", "ana-console-pw")

            async with client.post("/admin/apply", data={"csrf": csrf}) as resp:
                assert resp.status == 200
                page = await resp.text()
            assert 'id="applied"' in page and "use the file now" in page
            assert 'id="pending-changes"' not in page
            assert await can_log_in(env, "1102", "ana-console-pw")
            assert env.app[WEBHOOKS].webhooks == (Webhook("http://127.0.0.1:9/hook", "acct-9"),)
            entry = (await env.store.list_audit())[0]
            assert (entry.actor, entry.action) == (ADMIN, "apply config file")
            assert '+extension = "1102"' in entry.changes  # what the hand edit brought
            assert "+secret = ********" in entry.changes and "s" * 12 not in entry.changes

            port = env.settings.server.web_port
            edited = config.read_text(encoding="utf-8")
            config.write_text(
                edited.replace(f"web_port = {port}", f"web_port = {port + 1}", 1),
                encoding="utf-8",
            )
            async with client.post("/admin/apply", data={"csrf": csrf}) as resp:
                page = await resp.text()
            assert "Nothing to apply" in page
            assert re.search(r'id="awaiting-parts">server<', page)
        async with env.session() as client:  # an agent cannot apply the file
            csrf = await env.login(client, "1002")
            async with client.post("/admin/apply", data={"csrf": csrf}) as resp:
                assert resp.status == 403


async def test_a_save_the_running_server_refuses_is_kept_and_says_why(tmp_path: Path) -> None:
    """The file holds the demo's published SIP secrets and the web listens beyond loopback:
    `serve` would refuse to start on it, so a reload is refused too. The save is written
    (Asterisk may take it), the page says the running server did not, and lists it."""
    public = 'web_host = "0.0.0.0"'

    def edit(text: str) -> str:
        assert 'web_host = "127.0.0.1"' in text
        return text.replace('web_host = "127.0.0.1"', public, 1)

    async with console_env(tmp_path, edit=edit) as env:
        await save_preferences(env.store, ADMIN, {"ui_language": "en"}, default_language="en")
        async with env.session() as client:
            csrf = await env.login(client, ADMIN)
            status, html = await add_ana(client, csrf, role="agent", queues=["support-en"])
        assert status == 200, html
        assert 'id="applied"' not in html
        assert re.search(r'id="apply-error"[^>]*>[^<]*demo&#39;s secrets', html), html
        assert re.search(r'id="pending-added">[^<]*<span class="mono">1102</span>', html)
        assert load_settings(env.settings.file).site.member("1102") is not None
        assert not await can_log_in(env, "1102", "ana-console-pw")


async def test_a_member_removed_by_hand_loses_the_open_console_once_applied(
    tmp_path: Path,
) -> None:
    """A hand edit keeps the removed member's console password: once applied, the session
    check closes its open socket all the same (the member is not in the config)."""
    async with admin_env(tmp_path) as env:
        config = env.settings.file
        assert config is not None
        async with env.session() as agent, env.session() as admin:
            await env.login(agent, "1002")
            csrf = await env.login(admin, ADMIN)
            async with agent.ws_connect("/ws") as ws:
                await env.wait_sockets("1002")
                text = config.read_text(encoding="utf-8")
                config.write_text(agents_admin.remove_member(text, "1002"), encoding="utf-8")
                assert await close_ended_sessions(env.app) == 0  # not applied yet
                async with admin.post("/admin/apply", data={"csrf": csrf}) as resp:
                    assert 'id="applied"' in await resp.text()
                await close_ended_sessions(env.app)  # as the check every 2 s does (or did)
                msg = await receive_past_state(ws)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, WS_CLOSE_LOGGED_OUT)
            async with agent.get("/api/calls") as resp:
                assert resp.status == 401
