"""The CRM client for customer-ID nodes (the OMniLeads customer-ID interface).

For each confirmed ID the flow asks the node's CRM once: an HTTP POST to the node's `url` with
the form body `idContact=<digits>` and the configured `User-Agent`, answered by JSON
`{"status": "ok"|"fail", "destination": "true"|"false"|"X,Y"}`.

Every wait is bounded (principle 3 in docs/design.md#principles): the whole exchange, body included,
must end within `crm.timeout_s`; at most 64 KiB of body is read. Anything else than a well-formed
`ok` answer is a `CrmReply(None, error=...)`, logged and counted, and the caller goes to the node's
failure destination. The caller is waiting, so nothing is ever retried. A circuit breaker per
CRM URL stops asking a CRM that keeps failing: after `breaker_failures` consecutive failures it
answers "circuit open" at once for `breaker_cooldown_s`, then lets one request through
(half-open) and closes again when that one succeeds.

TLS certificates are always verified (aiohttp's default); there is no switch to turn it off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from prometheus_client import Counter, Histogram
from yarl import URL

from agi.flows.context import CrmReply
from dialplan.model import CrmSettings, CustomerIdNode

log = logging.getLogger("centralita.crm")

MAX_BODY = 64 * 1024
MAX_DESTINATION = 64  # "true", "false" or "X,Y": anything longer is not an answer
POOL_SIZE = 100  # concurrent CRM requests (one per caller waiting on a node)

CRM_REQUESTS = Counter(
    "centralita_crm_requests_total",
    "CRM customer-ID requests by result (ok, or why the answer was not usable)",
    ["result"],
)
CRM_LATENCY = Histogram(
    "centralita_crm_latency_seconds",
    "Time from sending a CRM request to having its whole answer (circuit-open skips excluded)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
)
CRM_CIRCUIT_OPENED = Counter(
    "centralita_crm_circuit_opened_total",
    "Times a CRM's circuit breaker opened after consecutive failures",
)

# Result labels (bounded: never a URL or a reason text).
OK = "ok"
TIMEOUT = "timeout"
CONNECTION = "connection"
HTTP_STATUS = "http_status"
TOO_LARGE = "too_large"
NOT_JSON = "not_json"
STATUS = "status_not_ok"
BAD_DESTINATION = "bad_destination"
CIRCUIT_OPEN = "circuit_open"


class _Failure(Exception):
    """Why one CRM answer is unusable: a metric label and a reason for the log."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass
class Breaker:
    """The circuit breaker of one CRM URL.

    closed: requests pass, failures are counted. open: requests are skipped until
    `opened_at + cooldown`. half-open: one request passes (`probing`); its success closes the
    circuit, its failure opens it again for another cooldown.
    """

    failures_to_open: int
    cooldown_s: float
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.probing else "open"

    def allow(self, now: float) -> bool:
        """May a request go out now? (Claims the single half-open probe when it does.)"""
        if self.opened_at is None:
            return True
        if self.probing or now < self.opened_at + self.cooldown_s:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self, now: float) -> bool:
        """Count a failure; True when this one opened (or re-opened) the circuit."""
        self.failures += 1
        if self.probing or (self.opened_at is None and self.failures >= self.failures_to_open):
            self.opened_at = now
            self.probing = False
            return True
        return False


class CrmClient:
    """Asks customer-ID CRMs, with one pooled HTTP session for all of them.

    Use `async with CrmClient(settings) as crm:` or `await start()` / `await close()`.
    `clock` (monotonic seconds) is injectable so tests can move time for the breaker.
    """

    def __init__(
        self,
        settings: CrmSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._breakers: dict[str, Breaker] = {}

    async def start(self) -> None:
        """Open the pooled session (idempotent)."""
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession(
            # One bound for connect, headers and body together (principle 3).
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            connector=aiohttp.TCPConnector(limit=self.pool_size),
            headers={"User-Agent": self.settings.user_agent},
            # Proxies from the environment are not followed: the config names the CRM.
            trust_env=False,
            raise_for_status=False,
        )

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def breaker(self, url: str) -> Breaker:
        """The circuit breaker of one CRM URL (created closed)."""
        breaker = self._breakers.get(url)
        if breaker is None:
            breaker = Breaker(self.settings.breaker_failures, self.settings.breaker_cooldown_s)
            self._breakers[url] = breaker
        return breaker

    async def ask(self, node: CustomerIdNode, customer_id: str) -> CrmReply:
        """Ask the node's CRM about `customer_id` once; never raises for a remote fault."""
        if node.url is None:
            return CrmReply(None, "the node has no CRM url")
        if not customer_id.isascii() or not customer_id.isdigit():
            # Only DTMF digits ever reach here; anything else is a programming error upstream.
            return CrmReply(None, "the customer ID must be digits")
        breaker = self.breaker(node.url)
        if not breaker.allow(self.clock()):
            CRM_REQUESTS.labels(CIRCUIT_OPEN).inc()
            log.warning("CRM %s skipped for node %s: circuit open", _shown(node.url), node.name)
            return CrmReply(None, "circuit open")
        started = time.perf_counter()
        try:
            destination = await self._post(node.url, customer_id)
        except _Failure as failure:
            CRM_LATENCY.observe(time.perf_counter() - started)
            CRM_REQUESTS.labels(failure.result).inc()
            opened = breaker.failure(self.clock())
            if opened:
                CRM_CIRCUIT_OPENED.inc()
            log.warning(
                "CRM %s for node %s failed: %s%s",
                _shown(node.url),
                node.name,
                failure.reason,
                f"; circuit open for {breaker.cooldown_s:g} s" if opened else "",
            )
            return CrmReply(None, failure.reason)
        except BaseException:
            # Cancelled (the server stopping) or a bug: free the half-open probe, re-raise.
            breaker.probing = False
            raise
        CRM_LATENCY.observe(time.perf_counter() - started)
        CRM_REQUESTS.labels(OK).inc()
        breaker.success()
        log.info("CRM %s for node %s answered %r", _shown(node.url), node.name, destination)
        return CrmReply(destination)

    async def _post(self, url: str, customer_id: str) -> str:
        session = self._session
        if session is None:
            raise _Failure(CONNECTION, "the CRM client is not started")
        try:
            # allow_redirects=False: a redirect is not an answer (and could point anywhere).
            async with session.post(
                url, data={"idContact": customer_id}, allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    raise _Failure(HTTP_STATUS, f"HTTP {response.status}")
                if response.content_length is not None and response.content_length > MAX_BODY:
                    response.close()  # do not read it, do not reuse the connection
                    raise _Failure(TOO_LARGE, f"body of {response.content_length} bytes")
                body = await _read_capped(response, MAX_BODY)
                if body is None:
                    response.close()
                    raise _Failure(TOO_LARGE, f"body over {MAX_BODY} bytes")
        except TimeoutError:
            raise _Failure(TIMEOUT, f"no answer within {self.settings.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Failure(CONNECTION, f"{type(exc).__name__}: {exc}") from None
        return _destination(body)


def _shown(url: str) -> str:
    """The URL for a log line, without any user:password in it."""
    try:
        return str(URL(url).with_user(None).with_query(None))
    except ValueError:
        return "<bad url>"


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body if it is at most `limit` bytes, else None; reads at most `limit` + 1 bytes."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return None


def _destination(body: bytes) -> str:
    """The `destination` of a well-formed `ok` answer; _Failure for anything else."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise _Failure(NOT_JSON, "the body is not JSON") from None
    if not isinstance(answer, dict):
        raise _Failure(NOT_JSON, "the body is not a JSON object")
    status = answer.get("status")
    if status != "ok":
        raise _Failure(STATUS, f"status {str(status)[:40]!r}")
    destination = answer.get("destination")
    if not isinstance(destination, str) or not destination.strip():
        raise _Failure(BAD_DESTINATION, "no destination in the answer")
    destination = destination.strip()
    if len(destination) > MAX_DESTINATION or not destination.isprintable():
        raise _Failure(BAD_DESTINATION, "the destination is not true, false or X,Y")
    return destination
