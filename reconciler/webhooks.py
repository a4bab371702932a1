"""Webhook delivery from the outbox: signed JSON POSTs, retried with back-off, at least once.

Every bit of delivery state (attempts, next attempt, delivered) lives in `webhook_outbox`, so a
restart loses nothing: a row is marked delivered only after a 2xx answer, and a delivery cut short
by a crash is simply sent again. Receivers de-duplicate on the event id (`id` in the body, and the
`webhook-id` and `X-Domaingate-Event-Id` headers).

Signed the Standard Webhooks way, so receivers verify with the `standardwebhooks` libraries:
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. The timestamp is the
time of each attempt and is signed with the body, so a receiver refuses a captured delivery
replayed later by its age, and cannot be fooled by a fresh timestamp put on an old body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import aiohttp

from domaingate.settings import webhook_key
from domaingate.store import outbox as store
from domaingate.store.abc import Database
from domaingate.store.outbox import OutboxItem
from domaingate.times import Clock, rfc3339

log = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
EVENT_ID_HEADER = "X-Domaingate-Event-Id"
# An answer is judged by its status alone. Its body is read, up to this much, only so that a short
# one leaves the connection reusable; past it the connection is closed, so a receiver (or a proxy
# or captive portal at WEBHOOK_URL) answering with a huge or endless body costs no memory.
MAX_ANSWER_OCTETS = 64 * 1024


def payload(item: OutboxItem) -> dict[str, Any]:
    return {
        "id": item.event_id,
        "type": item.type,
        "created_at": rfc3339(item.created_at),
        "data": {
            "domain": item.hostname,
            "tenant": item.tenant,
            "app": item.app,
            "status": item.status.value,
            "from_status": item.from_status.value if item.from_status else None,
            "reason": item.reason,
            "message": item.message,
        },
    }


def sign(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one attempt (`key`: see settings.webhook_key)."""
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Seconds before attempt n+1 after n failed attempts: base * 2^(n-1), at most `cap`."""

    base: float = 5.0
    cap: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("back-off needs 0 < base <= cap")

    def delay(self, failed_attempts: int) -> float:
        exponent = max(0, failed_attempts - 1)
        # Past ~2^30 the float would only overflow towards the cap anyway.
        return self.cap if exponent > 30 else min(self.cap, self.base * 2.0**exponent)


@dataclass(slots=True, kw_only=True)
class DeliveryResult:
    delivered: int = 0
    failed: int = 0


class WebhookSender:
    """Delivers due outbox rows to one URL.

    A session passed in stays its caller's to close; without one the sender opens its own at the
    first delivery and closes it in `close()`.
    """

    def __init__(
        self,
        db: Database,
        session: aiohttp.ClientSession | None = None,
        *,
        url: str,
        secret: str,
        clock: Clock,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        batch: int = 100,
    ) -> None:
        self._db = db
        self._session = session
        self._owns_session = session is None
        self._url = url
        self._key = webhook_key(secret)
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._batch = batch

    async def close(self) -> None:
        """Close the session this sender opened (none passed in)."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def deliver_due(self) -> DeliveryResult:
        result = DeliveryResult()
        for item in await store.due_webhooks(self._db, self._clock(), self._batch):
            error = await self._post(item)
            if error is None:
                await store.mark_delivered(self._db, item.event_id, self._clock())
                result.delivered += 1
                continue
            attempts = item.attempts + 1
            retry_in = self._backoff.delay(attempts)
            await store.mark_attempt_failed(
                self._db, item.event_id, next_attempt_at=self._clock() + retry_in, error=error
            )
            result.failed += 1
            log.warning(
                "webhook %s (%s) attempt %d failed: %s; retrying in %.0f s",
                item.event_id,
                item.type,
                attempts,
                error,
                retry_in,
            )
            if error.startswith("transport:"):
                # The endpoint is unreachable: the rest of the batch would only wait for the same
                # timeout. They stay due and go out once it answers again.
                break
        return result

    async def _post(self, item: OutboxItem) -> str | None:
        """None when the receiver accepted the event, else why not."""
        body = json.dumps(payload(item), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = math.floor(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "domaingate-webhooks/1",
            ID_HEADER: item.event_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._key, item.event_id, timestamp, body),
            EVENT_ID_HEADER: item.event_id,
        }
        try:
            async with self._client().post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                await _discard_answer(response)
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"transport: {type(exc).__name__}: {exc}"


async def _discard_answer(response: aiohttp.ClientResponse) -> None:
    """Read and drop the body of `response`, at most MAX_ANSWER_OCTETS of it, then close the
    connection rather than read on."""
    left = MAX_ANSWER_OCTETS
    while left > 0:
        chunk = await response.content.read(left)
        if not chunk:
            return  # the whole body: the connection goes back to the pool
        left -= len(chunk)
    response.close()
