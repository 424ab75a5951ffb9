"""The application's side of `agi.flows.context.FlowContext`: store, CSV logs, spool, CRM."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agi.flows.context import CallbackEntry, CrmReply, RatingEntry, SurveyRequest
from centralita import phone
from centralita.csvfiles import CsvFiles
from centralita.settings import Settings
from centralita.spool import schedule_call
from centralita.store import StoreBackend
from dialplan.model import CustomerIdNode, Site
from dialplan.names import (
    AGENT_VAR,
    CALL_ID_VAR,
    CALLER_VAR,
    OUTBOUND_CONTEXT,
    QUEUE_VAR,
    SURVEY_CONTEXT,
)

if TYPE_CHECKING:
    from centralita.asterisks import Asterisks

log = logging.getLogger("centralita.flows")


class Crm(Protocol):
    """The CRM client as flows use it (centralita.crm.CrmClient)."""

    async def ask(self, node: CustomerIdNode, customer_id: str) -> CrmReply: ...


class AppFlowContext:
    """Services handed to every call's flow."""

    def __init__(
        self,
        settings: Settings,
        store: StoreBackend,
        crm: Crm | None = None,
        csv_files: CsvFiles | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.crm = crm
        # callbacks.csv and complaints.csv (centralita/csvfiles.py: who writes them).
        self.csv_files = csv_files or CsvFiles(store, settings)
        # Every Asterisk server's AMI link, once the feed runs (centralita/feed.py).
        self.asterisks: Asterisks | None = None

    def take_settings(self, settings: Settings) -> None:
        """Use `settings` from now on (a reload: centralita/live.py); the flows read the site
        from here each time they need it, so a call in a flow follows from its next read."""
        self.settings = settings

    @property
    def site(self) -> Site:
        return self.settings.site

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def hold_callback(self, entry: CallbackEntry) -> int:
        request = await self.store.add_callback(
            callerid=entry.callerid,
            language=entry.language,
            queue=entry.queue,
            number=entry.number,
            alternative=entry.alternative,
            uniqueid=entry.uniqueid,
        )
        return request.id

    async def save_callback(self, entry: CallbackEntry, held: int | None = None) -> None:
        # Stored first, then logged: the store is the record, the CSV a copy (principle 4).
        request = None
        if held is not None:
            request = await self.store.set_callback_alternative(held, entry.alternative)
        if request is None:
            request = await self.store.add_callback(
                callerid=entry.callerid,
                language=entry.language,
                queue=entry.queue,
                number=entry.number,
                alternative=entry.alternative,
                uniqueid=entry.uniqueid,
            )
        await self.csv_files.callback_changed(request)

    async def save_rating(self, entry: RatingEntry) -> None:
        rating = await self.store.add_rating(
            callerid=entry.callerid,
            agent=entry.agent,
            queue=entry.queue,
            rating=entry.rating,
            call_id=entry.call_id,
        )
        await self.csv_files.rating_added(rating)

    async def schedule_survey(self, request: SurveyRequest) -> bool:
        site = self.site
        queue = site.queue(request.queue)
        if queue is None or not queue.survey:
            return False
        if phone.is_private(request.callerid):
            log.info("survey skipped for call %s: private caller", request.call_id)
            return False
        number = "".join(c for c in request.callerid if c.isdigit() or c == "+")
        if not number:
            return False
        survey = site.survey
        await schedule_call(
            self.spool_for(request),
            due=self.now() + timedelta(seconds=survey.delay_s),
            # Through the outbound context, exactly as click-to-dial reaches customers.
            channel=f"Local/{number}@{OUTBOUND_CONTEXT}",
            context=SURVEY_CONTEXT,
            extension="s",
            priority=1,
            callerid=survey.callerid,
            max_retries=survey.max_retries,
            retry_time_s=survey.retry_time_s,
            wait_time_s=survey.wait_time_s,
            variables={
                CALL_ID_VAR: request.call_id,
                AGENT_VAR: request.agent,
                QUEUE_VAR: request.queue,
                CALLER_VAR: number,
                "CHANNEL(language)": request.language,
            },
        )
        return True

    def spool_for(self, request: SurveyRequest) -> Path:
        """The spool of the Asterisk server that carried the call (its call file must be
        dialled by the server whose trunks and agents the customer just used).

        Which server that is comes from the AMI trackers, each of which saw its own server's
        channels (`Asterisks.for_call`: the flow's channel, agi_uniqueid, or the call's
        Linkedid): no AGI command is spent on it. The alternative, the rendered dialplan
        passing the server's name as an AGI argument, would make every server's
        extensions.conf differ and so force a set of files per server even when their
        members are the same. A call no tracker saw (AMI away the whole call) goes to the
        first server's spool, with a warning.
        """
        servers = self.settings.asterisks
        if len(servers) == 1:
            return servers[0].spool_dir
        link = None
        if self.asterisks is not None:
            link = self.asterisks.for_call(request.uniqueid, request.call_id)
        if link is None:
            log.warning(
                "survey for call %s: no Asterisk server's AMI saw it; using %s's spool",
                request.call_id,
                servers[0].name,
            )
            return servers[0].spool_dir
        return link.settings.spool_dir

    async def last_agent(self, callerid: str) -> str | None:
        manager = self.site.manager
        key = phone.normalize(
            callerid, manager.default_region, manager.match_digits, manager.min_digits
        )
        if key is None:
            return None
        return await self.store.last_agent_for(
            key,
            since=self.now() - timedelta(hours=manager.window_h),
            dispositions=manager.dispositions,
            agents={agent.extension for agent in self.site.agents},
        )

    async def ask_crm(self, node: CustomerIdNode, customer_id: str) -> CrmReply:
        if self.crm is None:
            return CrmReply(None, "no CRM client configured")
        return await self.crm.ask(node, customer_id)
