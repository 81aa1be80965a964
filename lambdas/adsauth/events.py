"""Lifecycle events for the systems around adsauth, on EventBridge (source ``adsauth``).

Each event is written to the table's outbox **in the same transaction** as the transition it
announces (``adapters.outbox``), so there is no event for a change that did not happen, and a
crash between the write and the publish only delays it: the dispatcher drains the outbox every
run. Delivery is at least once: consumers de-duplicate on ``detail.eventId``.

A detail holds ids, statuses, regions, times (ISO 8601, UTC) and fixed reason codes only: never a
token, code, state, invitation link or e-mail address or body. Schemas: ``docs/events/``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Any, Sequence

from adsauth.models import LifecycleEvent

logger = logging.getLogger("adsauth")
SOURCE = "adsauth"
SCHEMA_VERSION = "1"
DETAIL_TYPES = (
    "AdvertiserInvited",
    "AdvertiserConnected",
    "AdvertiserDeclined",
    "AdvertiserNeedsReauth",
    "AdvertiserRevoked",
    "GrantExpiring",
    "ReconsentCompleted",
    "ProfilesChanged",
)


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(detail_type: str, advertiser_id: str, now: float, **fields) -> LifecycleEvent:
    assert detail_type in DETAIL_TYPES
    event_id = uuid.uuid4().hex
    detail = {"eventId": event_id, "version": SCHEMA_VERSION, "advertiserId": advertiser_id, "occurredAt": iso(now), **fields}
    return LifecycleEvent(detail_type, advertiser_id, detail, event_id, now)


def invited(advertiser_id: str, *, region: str, generation: int, purpose: str, expires_at: float, now: float) -> LifecycleEvent:
    return _event("AdvertiserInvited", advertiser_id, now, region=region, generation=generation,
                  purpose=purpose, invitationExpiresAt=iso(expires_at))


def connected(advertiser_id: str, *, region: str, generation: int, source: str, consented_at: float | None,
              grant_expires_at: float | None, basis: str, now: float, reconsent: bool) -> LifecycleEvent:
    return _event("ReconsentCompleted" if reconsent else "AdvertiserConnected", advertiser_id, now,
                  region=region, generation=generation, source=source, consentedAt=iso(consented_at),
                  grantExpiresAt=iso(grant_expires_at), grantExpiryBasis=basis)


def declined(advertiser_id: str, *, generation: int, reason: str, now: float) -> LifecycleEvent:
    return _event("AdvertiserDeclined", advertiser_id, now, generation=generation, reason=reason)


def needs_reauth(advertiser_id: str, *, reason: str, grant_expires_at: float | None, now: float) -> LifecycleEvent:
    return _event("AdvertiserNeedsReauth", advertiser_id, now, reason=reason, grantExpiresAt=iso(grant_expires_at))


def revoked(advertiser_id: str, *, cause: str, now: float) -> LifecycleEvent:
    return _event("AdvertiserRevoked", advertiser_id, now, cause=cause)


def grant_expiring(advertiser_id: str, *, grant_expires_at: float, basis: str, lead_days: int, generation: int,
                   emailed: bool, now: float) -> LifecycleEvent:
    return _event("GrantExpiring", advertiser_id, now, grantExpiresAt=iso(grant_expires_at), grantExpiryBasis=basis,
                  leadDays=lead_days, daysLeft=max(0, int((grant_expires_at - now) // 86400)),
                  reconsentGeneration=generation, reconsentEmailed=emailed)


def profiles_changed(advertiser_id: str, *, added: list[tuple[str, int]], removed: list[tuple[str, int]],
                     now: float) -> LifecycleEvent:
    def entries(pairs):
        return [{"profileId": pid, "region": region} for region, pid in sorted(pairs)]

    return _event("ProfilesChanged", advertiser_id, now, added=entries(added), removed=entries(removed))


def relay(store: Any, publisher: Any, events: Sequence[LifecycleEvent] | None = None) -> int:
    """Publish ``events`` (just written), or every pending one, and delete the published ones
    from the outbox. Never raises: what is left is sent by the next run. Returns how many went."""
    if publisher is None or not getattr(store, "events_enabled", False):
        return 0
    try:
        batch = list(events) if events is not None else store.pending_events()
        if not batch:
            return 0
        accepted = publisher.publish(batch)
        if accepted:
            store.forget_events(accepted)
        return len(accepted)
    except Exception as exc:  # noqa: BLE001 - the outbox keeps them; the dispatcher retries
        logger.warning("lifecycle events left in the outbox", extra={"error_type": type(exc).__name__})
        return 0
