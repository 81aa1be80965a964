"""What the ``adsauth`` command prints: tables for people, one JSON document for scripts.

Both forms are built from the same records. Times read ``2026-12-01 17:00 UTC`` in tables and
``2026-12-01T17:00:00Z`` in JSON (docs/cli.md documents every key). No form ever holds a token;
the invitation link (for the operator to send) is the one secret-bearing value, on purpose.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Iterable, Sequence

from adsauth.models import Advertiser, AdvertiserStatus, Profile
from adsauth.settings import DAY, Settings

REGIONS = ("NA", "EU", "FE")


def when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def iso(epoch: float | None) -> str | None:
    """The events' timestamp format; no time (``None`` or 0) is ``null``."""
    from adsauth.events import iso as event_time

    return event_time(epoch or None)


def day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


def emit_json(document: dict) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def print_table(rows: Sequence[Sequence[object]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


class Progress:
    """``read 2,000 advertisers…`` on stderr, rewritten in place, only on a terminal and only once
    the work has taken longer than ``after`` seconds; ``done`` clears it."""

    def __init__(self, noun: str, *, after: float = 1.0, stream=None) -> None:
        self.noun, self.after = noun, after
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.shown = 0
        self.live = _isatty(self.stream)

    def update(self, count: int, noun: str | None = None) -> None:
        if not self.live or time.monotonic() - self.started < self.after:
            return
        text = f"read {count:,} {noun or self.noun}…"
        self.stream.write("\r" + text.ljust(self.shown))
        self.stream.flush()
        self.shown = max(self.shown, len(text))

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()
            self.shown = 0


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


# --- advertisers -----------------------------------------------------------------------------------
def grant_text(adv: Advertiser, settings: Settings, *, importing: bool = False) -> str:
    """When the advertiser's grant ends, and what that is known from (``lifecycle.grant_for``)."""
    basis, ends = adv.grant_expiry_basis, adv.grant_expires_at
    if adv.status is AdvertiserStatus.REVOKED:
        return "- (revoked: its tokens were deleted)"
    if basis == "consent" and ends is not None and adv.consented_at is not None:
        return f"{when(ends)} (consent {day(adv.consented_at)}; {round((ends - adv.consented_at) / DAY)} days)"
    if basis == "token_response" and ends is not None:
        return f"{when(ends)} (as Login with Amazon's token response said)"
    if basis == "unknown_consent" and ends is not None:
        why = "consent date unknown: re-consent is asked before that" if importing else "consent date unknown"
        return f"at the earliest {when(ends)} ({why})"
    if basis == "none":
        return f"no end known (consent before {day(settings.grant_expiry_from)})"
    return "-"  # never connected


def grant_doc(adv: Advertiser) -> dict:
    revoked = adv.status is AdvertiserStatus.REVOKED
    return {
        "expires_at": None if revoked else iso(adv.grant_expires_at),
        "basis": (adv.grant_expiry_basis or None) if not revoked else None,
        "consented_at": iso(adv.consented_at),
    }


def display_status(adv: Advertiser, now: float) -> str:
    """The status as ``list`` shows and filters it: ``invitation_expired`` for an invited
    advertiser whose link expired; otherwise the stored status."""
    if adv.status is AdvertiserStatus.INVITED and not adv.invitation_open(now):
        return "invitation_expired"
    return adv.status.value


def counts_text(counts: dict[str, int], pending: Iterable[str]) -> str:
    pending = set(pending)
    return ", ".join(f"{r} {counts.get(r, 0)}{'*' if r in pending else ''}" for r in REGIONS)


def advertiser_doc(adv: Advertiser, counts: dict[str, int], now: float) -> dict:
    """An advertiser in JSON (``list`` rows; ``show`` adds to it)."""
    invitation = None
    if adv.invitation_hash:
        invitation = {"open": adv.invitation_open(now), "expires_at": iso(adv.invitation_expires_at),
                      "purpose": adv.invitation_purpose or "invite"}
    return {
        "advertiser_id": adv.advertiser_id,
        "name": adv.name,
        "email": adv.email,
        "region": adv.region.value,
        "status": adv.status.value,
        "status_reason": adv.status_reason or None,
        "invitation_expired": display_status(adv, now) == "invitation_expired",
        "invitation": invitation,
        "reconsent_pending": adv.reconsent_pending,
        "token_expires_at": iso(adv.token_expires_at),
        "grant": grant_doc(adv),
        "last_refresh_at": iso(adv.last_refresh_at),
        "last_refresh_error": adv.last_refresh_error or None,
        "profile_counts": {r: counts.get(r, 0) for r in REGIONS},
        "pending_regions": sorted(r.value for r in adv.pending_regions),
    }


def profile_doc(p: Profile) -> dict:
    return {
        "profile_id": p.profile_id, "region": p.region.value, "country_code": p.country_code,
        "currency_code": p.currency_code, "timezone": p.timezone, "marketplace_id": p.marketplace_id,
        "account_id": p.account_id, "account_type": p.account_type, "account_name": p.account_name,
        "status": p.status, "removed_at": iso(p.removed_at),
    }
