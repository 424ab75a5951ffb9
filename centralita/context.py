"""The application's side of `agi.flows.context.FlowContext`: store, CSV logs, spool, CRM."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol

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

    @property
    def site(self) -> Site:
        return self.settings.site

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def save_callback(self, entry: CallbackEntry) -> None:
        # Stored first, then logged: the store is the record, the CSV a copy (principle 4).
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
            self.settings.asterisk.spool_dir,
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
