"""Keeping every connected advertiser's access token, and its profile list, fresh.

Pure domain logic: no boto3, no HTTP. The adapters come in through ``ports``.

- ``dispatch_due(now)``: the scheduled run. One query per shard of the ``byExpiry`` index finds
  the connected advertisers whose deadline (see ``DueSchedule``) is inside the lead window; each is
  queued once and its deadline snoozed for a few minutes, so a backlog or an LwA outage does not
  queue it again every minute. A job that fails is retried by SQS, then dead-lettered; the snooze
  ends and the next run finds the advertiser again: nothing is lost. A run holds the dispatch
  lease while it queues, so overlapping runs queue nothing twice (``adsauth.dispatch``).
- ``refresh(advertiser_id)``: one job. Nothing due → no LwA call (duplicates and redeliveries are
  harmless). Otherwise: lease → refresh token → LwA → new refresh token (if rotated) → access
  token → advertiser item → profiles when due.

Lease and fencing
-----------------
A worker first takes the advertiser's lease: a conditional update of the advertiser item that
succeeds only when no unexpired lease is held, sets the owner (a random id per attempt) and the
expiry (``REFRESH_LEASE_SECONDS``, longer than a refresh can take with all HTTP retries), and adds
one to ``lease_fence``. So two workers never refresh one advertiser at once, and every lease ever
taken on an advertiser has a larger fence than the ones before it.

A worker can still stall past its lease (a frozen Lambda, a slow network) while a newer holder
refreshes. The stale worker can then do no harm:

- a rotated refresh token is stored first, right after LwA answers and before any lease check
  (LwA has retired the old token, so this one is the grant and must not be dropped), as the
  successor of the secret version it was refreshed from (see ``adapters.vault``): each version
  has at most one successor, so a refresh token is never overwritten by an older one, whoever
  holds the lease. The fence is stored with the token for the record;
- everything after it is conditional on ``lease_owner`` *and* ``lease_fence`` being still its own
  (``hold_lease`` before the access token is written, ``record_refresh`` and
  ``mark_needs_reauth`` after), so a stale worker's writes fail and it stops;
- an ``invalid_grant`` only means "needs re-authorization" when the refresh token we sent is still
  the current one: after a concurrent rotation it only means our copy was outdated.

Probe before fanning out
------------------------
Refreshes of one process may run in parallel (the worker handles a batch's records at once), but
only while LwA has accepted our client within the last minute. Otherwise the LwA calls go one at
a time, each after a fresh look at the platform pause: when the client secret was rotated, one
call finds out (``invalid_client`` → pause) and the records queued behind it make no call.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable

from adsauth import events
from adsauth.dispatch import DISPATCH_LEASE_SECONDS, dispatch_due
from adsauth.events import relay
from adsauth.lifecycle import REFUSED, expiring_soon, grant_end, grant_ended, grant_for, new_invitation, reconsent_due
from adsauth.mail import reconsent_email

from adsauth.errors import (
    AdvertiserUnknown,
    ClientMisconfigured,
    ClientRejected,
    GrantInvalid,
    LwaError,
    LwaRefused,
    RequestRejected,
    RefreshTokenMissing,
    RefreshTokenSuperseded,
    RefreshTokenUnsaved,
    TokensDeleted,
    TransitionRefused,
)
from adsauth.packs import PackJob
from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    DueAdvertiser,
    Lease,
    ProfilesResult,
    RefreshResult,
    StoredRefreshToken,
    TokenSet,
)
from adsauth.profiles import list_in_regions
from adsauth.ports import EventPublisher, LwaRefresher, Mailer, Notifier, ProfilesClient, RefreshQueue, RefreshStore, RefreshVault
from adsauth.regions import Region
from adsauth.settings import Settings

PLATFORM_PAUSE_SECONDS = 900  # after invalid_client (or another client refusal), no LwA call for 15 minutes
PAUSE_CAUSES = {  # what each refusal of our client means, for the alert
    "invalid_client": "the LwA client id or secret is wrong, was rotated, or the secret is missing or malformed.",
    "client_misconfigured": "the LwA client secret in Secrets Manager is missing or malformed.",
    "unauthorized_client": "the LwA security profile may not use the refresh-token grant.",
    "unsupported_grant_type": "Login with Amazon does not take the refresh-token grant as sent.",
    "invalid_scope": "the grant's scope is not (or no longer) allowed for this client (its Ads API access).",
}
LWA_TRUST_SECONDS = 60  # after LwA accepted our client, calls may run in parallel for a minute
ROTATED_SAVE_ATTEMPTS = 4  # a rotated refresh token is the only copy of the grant: try hard
ROTATED_SAVE_BACKOFF_CAP = 4.0
REVOKE_ATTEMPTS = 3


@dataclass(frozen=True)
class Held:
    """An advertiser whose lease is held and whose token is due: what ``_begin`` hands over."""

    lease: Lease
    advertiser: Advertiser
    cause: str  # schedule | profiles | forced
    reconsent: int | None = None
    expiring: bool = False


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class Refresher:
    def __init__(
        self,
        *,
        settings: Settings,
        store: RefreshStore,
        vault: RefreshVault,
        lwa: LwaRefresher,
        ads: ProfilesClient,
        notifier: Notifier,
        queue: RefreshQueue | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        publisher: EventPublisher | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.publisher = publisher
        self.mailer = mailer
        self.settings = settings
        self.schedule = settings.due_schedule
        self.store = store
        self.vault = vault
        self.lwa = lwa
        self.ads = ads
        self.notifier = notifier
        self.queue = queue
        self.clock = clock
        self.sleep = sleep
        self._probe = threading.Lock()
        self._trusted_until = 0.0

    # --- the scheduled run ---------------------------------------------------------------------
    def dispatch_due(
        self, now: float | None = None, *, on_due: Callable[[list[DueAdvertiser]], None] | None = None,
        lease_seconds: float = DISPATCH_LEASE_SECONDS,
    ) -> int | None:
        """Queue every connected advertiser that is due; return how many were queued, or None
        when another run holds the dispatch lease (``adsauth.dispatch``, its transitions)."""
        now = self.clock() if now is None else now
        return dispatch_due(self.store, self.queue, self.schedule, self.clock, now,
                            on_due=on_due, lease_seconds=lease_seconds, layout=self.settings.token_layout)

    # --- one advertiser ------------------------------------------------------------------------
    def refresh(self, advertiser_id: str, *, force: bool = False) -> RefreshResult:
        """Refresh the advertiser's access token if it is due (``force``: now, even if fresh),
        and its profiles if they are due. Transient LwA failures raise ``LwaError`` after the
        advertiser's ``last_refresh_error`` says why."""
        return self._run(advertiser_id, force_token=force, force_profiles=False)

    def refresh_profiles(self, advertiser_id: str) -> RefreshResult:
        """List the advertiser's profiles in every region now. Listing needs a valid access token,
        which the refresher cannot read back (only downstream can), so the token is renewed on the
        way: one LwA call, for an on-demand request."""
        return self._run(advertiser_id, force_token=True, force_profiles=True)

    def refresh_pack(self, job: PackJob, *, force: bool = False, run_all=None, deadline=None) -> list[RefreshResult]:
        """One pack's job (``adsauth.packs``): its members due within the alignment window and
        its joiners refreshed together, their tokens written in one write per pack secret.
        ``run_all(f, items)`` maps the per-advertiser work (the worker passes a thread pool);
        past ``deadline`` (``adsauth.deadline.Deadline``) no further refresh is started."""
        return self._pack_job(job, force_token=force, force_profiles=False, run_all=run_all, deadline=deadline)

    def _pack_job(self, job: PackJob, *, force_token: bool, force_profiles: bool, run_all=None,
                  deadline=None) -> list[RefreshResult]:
        from adsauth.pack_refresh import run_pack_job

        return run_pack_job(self, job, force_token=force_token, force_profiles=force_profiles, run_all=run_all,
                            deadline=deadline)

    def revoke(self, advertiser_id: str, *, cause: str = "operator") -> None:
        """Mark the advertiser ``revoked`` with a new generation **first** (no refresh, link or
        state of it can write anything from then on), then delete both token secrets (or its
        entries of its pack's two secrets; a pack job that was moving it in removes them too); its
        records and history stay. (LwA has no revocation endpoint: the grant itself ends when the
        advertiser removes the app in their Amazon account, or by disuse.)"""
        for _ in range(REVOKE_ATTEMPTS):  # an operator's revoke always wins: re-read and retry
            advertiser = self.store.get_advertiser(advertiser_id)
            if advertiser is None:
                raise AdvertiserUnknown()
            now = self.clock()
            announced = [events.revoked(advertiser_id, cause=cause, now=now)]
            if self.store.revoke_advertiser(advertiser, cause=cause, now=now, events=announced):
                break
        else:
            raise TransitionRefused(REFUSED["changed"])
        self.vault.delete_tokens(advertiser_id)
        # its entries go from the pack's secrets at once, not at the pack's next job: from the pack
        # it was read in and the one its item names now (a job may have moved it in since the read;
        # none can move it once it is revoked)
        latest = self.store.get_advertiser(advertiser_id)
        for pack in dict.fromkeys(p for p in (advertiser.pack, latest.pack if latest else "") if p):
            from adsauth.pack_refresh import remove_from_pack

            remove_from_pack(self.vault, pack, advertiser_id)
        self.store.add_event(advertiser_id, "revoked", cause, now)
        relay(self.store, self.publisher, announced)

    def relay_events(self) -> int:
        """Publish what the outbox still holds (the dispatcher, every run)."""
        return relay(self.store, self.publisher)

    def _run(self, advertiser_id: str, *, force_token: bool, force_profiles: bool) -> RefreshResult:
        advertiser = self.store.get_advertiser(advertiser_id)
        if advertiser is None:
            raise AdvertiserUnknown()
        if advertiser.pack and advertiser.status is AdvertiserStatus.CONNECTED:
            # its tokens are in a pack: refreshed by that pack's job (alone here: an operator's
            # request, or a job queued before it joined)
            return self._pack_job(PackJob(advertiser.pack, (advertiser_id,)), force_token=force_token,
                                  force_profiles=force_profiles)[0]
        held = self._begin(advertiser, force_token=force_token, force_profiles=force_profiles)
        if isinstance(held, RefreshResult):
            return held
        try:
            result = self._refresh_held(held.advertiser, held.lease, held.cause, force_profiles)
            if result.outcome == "refreshed" and self.settings.token_layout == "packed":
                self.store.enter_lobby(advertiser_id)  # a pack with room takes it in at its next job
            return self._decorate(result, held)
        except (LwaError, RefreshTokenUnsaved):
            raise  # its reason is recorded already
        except Exception:  # a secret or table write failed: SQS delivers the job again
            self._note_error(advertiser_id, "refresh_incomplete")
            raise
        finally:
            self.store.release_lease(held.lease)

    def _begin(self, advertiser: Advertiser, *, force_token: bool, force_profiles: bool, early: float = 0.0,
               lease_until: float | None = None) -> RefreshResult | Held:
        """Everything before the refresh itself: the due check (``early``: seconds ahead, for a
        pack's members due soon), the pause, the advertiser's lease, grant expiry and re-consent.
        Returns the final result (no lease kept), or the lease held and what to refresh."""
        advertiser_id, now = advertiser.advertiser_id, self.clock()
        if advertiser.status is not AdvertiserStatus.CONNECTED:
            return RefreshResult(advertiser_id, "not_connected", reason=advertiser.status.value)
        if not self._due(advertiser, now + early, force_token, force_profiles):
            return self._fresh(advertiser)
        if self.store.platform_paused_until(now) is not None:
            return RefreshResult(advertiser_id, "paused", reason="invalid_client")
        taken = self.store.acquire_lease(
            advertiser_id, uuid.uuid4().hex, now, lease_until or now + self.settings.refresh_lease_seconds
        )
        if taken is None:
            return RefreshResult(advertiser_id, "busy")  # the holder does the work
        lease, advertiser = taken  # the advertiser as it was when the lease was taken
        handed_over = False
        try:
            if advertiser.status is not AdvertiserStatus.CONNECTED:
                return RefreshResult(advertiser_id, "not_connected", reason=advertiser.status.value)
            if not advertiser.grant_expiry_basis and advertiser.connected_at is not None:
                # connected before grants were recorded: its consent was its last connection
                grant = grant_for(self.settings, advertiser.connected_at, now=now)
                if self.store.record_grant(advertiser_id, grant, lease):
                    advertiser = replace(advertiser, consented_at=grant.consented_at,
                                         grant_expires_at=grant.expires_at, grant_expiry_basis=grant.basis)
            if grant_ended(advertiser, now, self.schedule.lead_seconds):
                return self._needs_reauth(advertiser, lease, "grant_expired")  # before LwA refuses it
            reconsent = self._maybe_reconsent(advertiser, lease, now)
            if reconsent:
                advertiser = self.store.get_advertiser(advertiser_id) or advertiser
            expiring = expiring_soon(advertiser, self.settings, now)
            if not self._due(advertiser, now + early, force_token, force_profiles):
                return replace(self._fresh(advertiser), reconsent_lead=reconsent, grant_expiring=expiring)
            cause = "forced" if force_token else (
                "schedule" if self.schedule.token_due(advertiser.token_expires_at, now + early) else "profiles")
            handed_over = True
            return Held(lease, advertiser, cause, reconsent, expiring)
        finally:
            if not handed_over:
                self.store.release_lease(lease)

    @staticmethod
    def _decorate(result: RefreshResult, held: Held) -> RefreshResult:
        return replace(result, reconsent_lead=held.reconsent, grant_expiring=held.expiring)

    # --- grant expiry and re-consent ---------------------------------------------------------------
    def _maybe_reconsent(self, advertiser: Advertiser, lease: Lease, now: float) -> int | None:
        """When a lead time before the grant's end has passed, start a re-consent: with a mailer,
        a fresh invitation of the next generation e-mailed to the advertiser, valid until the end
        (the next lead's replaces it), ``reconsent_pending`` while it stays connected; without one,
        an alert asking ops to ``reinvite`` (no link is created that nobody receives, and the
        links ops send are not replaced). ``GrantExpiring`` either way. Returns the lead (days)."""
        leads = reconsent_due(advertiser, self.settings, now)
        if not leads:
            return None
        lead = min(leads)  # several passed (an import late in its year): one invitation, the nearest lead
        unknown = advertiser.grant_expiry_basis == "unknown_consent"
        ends = advertiser.grant_expires_at or now
        if self.mailer is None:
            announced = [events.grant_expiring(advertiser.advertiser_id, grant_expires_at=ends,
                                               basis=advertiser.grant_expiry_basis, lead_days=lead,
                                               generation=advertiser.generation, emailed=False, now=now)]
            if not self.store.note_reconsent_leads(advertiser, leads, lease, announced):
                return None
            self._grant_alert(advertiser, emailed=False)
            self.store.add_event(advertiser.advertiser_id, "grant_expiring", f"{lead}_days", now)
            self._announce(announced)
            return lead
        ttl = max(self.settings.invitation_ttl_seconds, int(ends - now))
        invitation, token = new_invitation(
            advertiser, purpose="reconsent", now=now, ttl_seconds=ttl, generation=advertiser.generation + 1,
        )
        announced = [
            events.grant_expiring(advertiser.advertiser_id, grant_expires_at=ends, basis=advertiser.grant_expiry_basis,
                                  lead_days=lead, generation=invitation.generation, emailed=True, now=now),
            events.invited(advertiser.advertiser_id, region=advertiser.region.value, generation=invitation.generation,
                           purpose="reconsent", expires_at=invitation.expires_at, now=now),
        ]
        # It waits while the advertiser is at Amazon with the current link, except at the last
        # lead: someone holding the link cannot keep the re-consent from ever going out.
        last_lead = lead == min(self.settings.reconsent_lead_days)
        # written before the invitation is issued: a message that cannot be written (no
        # OPERATOR_NAME) changes nothing
        subject, text, html = reconsent_email(self.settings, advertiser, self.settings.invitation_url(token),
                                              invitation.expires_at, ends)
        if not self.store.issue_invitation(advertiser, invitation, now=now, events=announced, reconsent_leads=leads,
                                           quiet_since=None if last_lead else now - self.settings.state_ttl_seconds):
            return None  # changed meanwhile, or the advertiser is using the current link right now: next run
        self.store.add_event(advertiser.advertiser_id, "reconsent", f"{lead}_days", now)
        try:
            self.mailer.send(advertiser.email, subject, text, html)
            emailed = True
        except Exception:  # noqa: BLE001 - the operator is told; the next lead sends again
            emailed = False
        if not emailed or unknown:
            self._grant_alert(advertiser, emailed=emailed)
        self._announce(announced)
        return lead

    def _grant_alert(self, advertiser: Advertiser, *, emailed: bool) -> None:
        earliest = "at the earliest " if advertiser.grant_expiry_basis == "unknown_consent" else ""
        self.notifier.alert(
            "adsauth: an advertiser's grant ends soon",
            f"Advertiser {advertiser.name} ({advertiser.advertiser_id}): its Amazon Ads grant ends "
            f"{earliest}{_when(advertiser.grant_expires_at)}.\n\n"
            + ("A re-consent invitation was e-mailed to the advertiser.\n" if emailed else
               "No re-consent invitation was e-mailed (no SES sender is configured, or SES failed).\n"
               f"Send the advertiser a link with:\n    adsauth reinvite {advertiser.advertiser_id}\n"),
        )

    def _announce(self, announced) -> None:
        relay(self.store, self.publisher, announced)

    def _profiles_due_at(self, advertiser: Advertiser) -> float:
        last = advertiser.profiles_at or advertiser.connected_at
        return self.schedule.profiles_due_at(last, advertiser.pending_regions)

    def _due(self, advertiser: Advertiser, now: float, force_token: bool, force_profiles: bool) -> bool:
        """Due at ``now`` (a pack's job asks a little ahead, see ``packs.ALIGN_SECONDS``)."""
        return (
            force_token
            or force_profiles
            or self.schedule.token_due(advertiser.token_expires_at, now)
            or self._profiles_due_at(advertiser) <= now
            or grant_ended(advertiser, now, self.schedule.lead_seconds)
        )

    def _deadline(self, advertiser: Advertiser, token_expires_at: float, profiles_at: float | None, pending) -> float:
        return self.schedule.deadline(token_expires_at, profiles_at, pending,
                                      grant_end(advertiser.grant_expires_at, advertiser.grant_expiry_basis))

    def _fresh(self, advertiser: Advertiser) -> RefreshResult:
        # Queued although nothing is due (a duplicate, a snoozed deadline): put the deadline back
        # where the advertiser's state says. From an older state it can only be earlier: safe.
        if advertiser.token_expires_at is not None:
            last = advertiser.profiles_at or advertiser.connected_at
            self.store.set_deadline(
                advertiser.advertiser_id,
                self._deadline(advertiser, advertiser.token_expires_at, last, advertiser.pending_regions),
            )
        return RefreshResult(advertiser.advertiser_id, "fresh", token_expires_at=advertiser.token_expires_at)

    def _refresh_held(self, advertiser: Advertiser, lease: Lease, cause: str, force_profiles: bool) -> RefreshResult:
        """One advertiser of its own secrets: refresh token → LwA → rotated token → lease check →
        access token → the advertiser item."""
        advertiser_id = advertiser.advertiser_id
        try:
            stored = self.vault.get_refresh_token(advertiser_id)
        except RefreshTokenMissing:
            stored = None

        def save(tokens: TokenSet, now: float) -> None:
            self.vault.replace_refresh_token(advertiser_id, tokens.refresh_token, now, replaces=stored.version,
                                             fence=lease.fence)

        def current() -> str | None:
            try:
                return self.vault.get_refresh_token(advertiser_id).version
            except RefreshTokenMissing:
                return None

        got = self._obtain(advertiser, lease, stored, save, current)
        if isinstance(got, RefreshResult):
            return got
        tokens, rotated = got
        now = self.clock()
        held = self.store.hold_lease(lease, now, now + self.settings.refresh_lease_seconds)
        if held is None:  # lost, or the advertiser is no longer connected (revoked meanwhile)
            return RefreshResult(advertiser_id, "superseded", reason="lease_lost")
        try:
            self.vault.put_access_token(advertiser_id, tokens.access_token, tokens.expires_at)
        except TokensDeleted:  # revoked after the lease check: the secret is never created again
            return RefreshResult(advertiser_id, "not_connected", reason="tokens_deleted")
        return self._record(advertiser, held, tokens, rotated, cause, force_profiles)

    def _obtain(self, advertiser: Advertiser, lease: Lease, stored: StoredRefreshToken | None,
                save: Callable[[TokenSet, float], None], current: Callable[[], str | None]):
        """LwA's answer for ``stored`` (None: no refresh token is stored), with a rotated refresh
        token saved (``save``, given the whole answer) before anything else. Returns (tokens, rotated), or the result
        when there is nothing to store. ``current``: the version stored now (``invalid_grant``
        only means re-authorization when we sent the current token)."""
        advertiser_id = advertiser.advertiser_id
        if stored is None:
            return self._needs_reauth(advertiser, lease, "refresh_token_missing")
        try:
            tokens = self._call_lwa(advertiser.region, stored.value)
            if tokens is None:
                return RefreshResult(advertiser_id, "paused", reason="invalid_client")
        except GrantInvalid:
            return self._grant_rejected(advertiser, lease, stored, current)
        except (ClientRejected, ClientMisconfigured) as exc:  # refreshes are paused already
            self.store.record_refresh_error(advertiser_id, exc.code, self.clock())
            return RefreshResult(advertiser_id, "client_invalid", reason=exc.code)
        except (RequestRejected, LwaRefused) as exc:
            # LwA refused this request: sending it again gets the same answer, so SQS does not
            # deliver it again; the advertiser stays connected, says why, and the next run retries
            self.store.record_refresh_error(advertiser_id, exc.code, self.clock())
            return RefreshResult(advertiser_id, "refused", reason=exc.code)
        except LwaError as exc:  # unavailable after the HTTP retries
            self.store.record_refresh_error(advertiser_id, exc.code, self.clock())
            raise
        rotated = tokens.refresh_token != stored.value
        if rotated:
            # The grant itself, before anything else (even the lease check: LwA has retired the old
            # token, so this one must not be dropped). The successor-version write refuses it if a
            # newer token was stored meanwhile.
            saved_at = self.clock()  # one value for every attempt: a retry that landed is a no-op
            try:
                self._save_rotated(advertiser_id, lambda: save(tokens, saved_at))
            except RefreshTokenSuperseded:
                return RefreshResult(advertiser_id, "superseded", reason="refresh_token_superseded")
        return tokens, rotated

    def _record(self, advertiser: Advertiser, lease: Lease, tokens, rotated: bool, cause: str, force_profiles: bool,
                *, pack: str | None = None) -> RefreshResult:
        """The advertiser item after its new tokens are stored: expiry, deadline, profiles when
        due (and ``pack``, see ``RefreshStore.record_refresh``)."""
        advertiser_id, now = advertiser.advertiser_id, self.clock()
        profiles, profiles_at, pending = None, advertiser.profiles_at or advertiser.connected_at, advertiser.pending_regions
        # profiles ride along with the token refresh that comes before they are due
        if force_profiles or self._profiles_due_at(advertiser) <= tokens.expires_at - self.schedule.lead_seconds:
            profiles = self._list_profiles(advertiser_id, tokens.access_token, now)
            profiles_at, pending = now, tuple(Region(r) for r in profiles.regions_pending)
        recorded = self.store.record_refresh(
            advertiser_id,
            lease=lease,
            token_expires_at=tokens.expires_at,
            due_at=self._deadline(advertiser, tokens.expires_at, profiles_at, pending),
            now=now,
            profiles_at=now if profiles is not None else None,
            pending_regions=pending if profiles is not None else None,
            **({} if pack is None else {"pack": pack}),
        )
        if not recorded:
            return RefreshResult(advertiser_id, "superseded", reason="lease_lost")
        if rotated:
            self.store.add_event(advertiser_id, "rotated", cause, now)
        self.store.add_event(advertiser_id, "refreshed", cause, self.clock())
        return RefreshResult(
            advertiser_id, "refreshed", rotated=rotated, token_expires_at=tokens.expires_at, profiles=profiles
        )

    def _save_rotated(self, advertiser_id: str, write: Callable[[], None]) -> None:
        """Store a rotated refresh token (``write``), retrying within the lease: it is the only
        copy of the grant. A retry of a write that did land is a no-op (same version id, same value)."""
        for attempt in range(1, ROTATED_SAVE_ATTEMPTS + 1):
            try:
                write()
                return
            except RefreshTokenSuperseded:
                raise
            except Exception:
                if attempt == ROTATED_SAVE_ATTEMPTS:
                    self._note_error(advertiser_id, RefreshTokenUnsaved.code)
                    raise RefreshTokenUnsaved() from None  # never chained: AWS errors can echo values
                self.sleep(min(ROTATED_SAVE_BACKOFF_CAP, 0.5 * 2 ** (attempt - 1)))

    def _note_error(self, advertiser_id: str, reason: str) -> None:
        """Best effort: the advertiser's ``last_refresh_error`` says why (the table may be what failed)."""
        try:
            self.store.record_refresh_error(advertiser_id, reason, self.clock())
        except Exception:  # noqa: BLE001 - the original error is the one that matters
            pass

    def _call_lwa(self, region: Region, refresh_token: str):
        """``lwa.refresh``, alone while LwA's acceptance of our client is unproven; None when
        refreshes were paused meanwhile (see "Probe before fanning out")."""
        if not self._trusted():
            with self._probe:
                if not self._trusted():  # nobody proved it while we waited
                    if self.store.platform_paused_until(self.clock()) is not None:
                        return None
                    return self._lwa_refresh(region, refresh_token)  # paused before the lock is let go
        return self._lwa_refresh(region, refresh_token)

    def _lwa_refresh(self, region: Region, refresh_token: str):
        try:
            tokens = self.lwa.refresh(region, refresh_token)
        except (ClientRejected, ClientMisconfigured) as exc:
            self._trusted_until = 0.0
            self._pause(exc.code)
            raise
        self._trusted_until = self.clock() + LWA_TRUST_SECONDS
        return tokens

    def _trusted(self) -> bool:
        # a deadline further away than the window means the clock went back: not trusted
        return 0 < self._trusted_until - self.clock() <= LWA_TRUST_SECONDS

    def _list_profiles(self, advertiser_id: str, access_token: str, now: float) -> ProfilesResult:
        """Every allowed region at once; new profiles are added, vanished ones marked removed, a
        region that fails stays pending (and is asked again later)."""
        found, pending = list_in_regions(self.ads, self.settings.allowed_regions, access_token)
        self.store.merge_profiles(advertiser_id, found, now)
        return ProfilesResult(
            regions_ok=tuple(r.value for r in found),
            regions_pending=tuple(r.value for r in pending),
            profile_count=sum(len(p) for p in found.values()),
        )

    # --- failures --------------------------------------------------------------------------------
    def _grant_rejected(self, advertiser: Advertiser, lease: Lease, sent: StoredRefreshToken,
                        current: Callable[[], str | None]) -> RefreshResult:
        now_stored = current()
        if now_stored is not None and now_stored != sent.version:
            # rotated by a newer lease holder: our copy was just outdated
            return RefreshResult(advertiser.advertiser_id, "superseded", reason="refresh_token_superseded")
        return self._needs_reauth(advertiser, lease, "invalid_grant")

    def _needs_reauth(self, advertiser: Advertiser, lease: Lease, reason: str) -> RefreshResult:
        advertiser_id, now = advertiser.advertiser_id, self.clock()
        announced = [events.needs_reauth(advertiser_id, reason=reason, grant_expires_at=advertiser.grant_expires_at, now=now)]
        if not self.store.mark_needs_reauth(advertiser_id, reason, now, lease, announced):
            return RefreshResult(advertiser_id, "superseded", reason="lease_lost")
        self.store.add_event(advertiser_id, "needs_reauth", reason, now)
        self._announce(announced)
        if reason == "grant_expired":
            self.notifier.alert(
                "adsauth: an advertiser's grant is ending without re-consent",
                f"Advertiser {advertiser.name} ({advertiser_id}): its Amazon Ads grant ends "
                f"({_when(advertiser.grant_expires_at)}, Amazon's limit after its consent) and no re-consent was completed.\n"
                "It is now needs_reauth; downstream calls fail with NeedsReauthorization once its current "
                "access token runs out.\n\nWhat to do: send the advertiser a new authorization link:\n"
                f"    adsauth reinvite {advertiser_id}\n",
            )
            return RefreshResult(advertiser_id, "needs_reauth", reason=reason)
        self.notifier.alert(
            "adsauth: an advertiser must authorize again",
            f"Advertiser {advertiser.name} ({advertiser_id}) must authorize adsauth again.\n\n"
            f"Login with Amazon refused its refresh token ({reason}): the advertiser removed the "
            "app's access in their Amazon account, or the grant was revoked or lost.\n"
            "No more refreshes are attempted for it. Downstream calls for it fail with "
            f"NeedsReauthorization once its current access token expires ({_when(advertiser.token_expires_at)}).\n\n"
            "What to do: send the advertiser a new authorization link:\n"
            f"    adsauth reinvite {advertiser_id}\n",
        )
        return RefreshResult(advertiser_id, "needs_reauth", reason=reason)

    def _pause(self, code: str) -> None:
        now = self.clock()
        until = now + PLATFORM_PAUSE_SECONDS
        if self.store.pause_platform(code, now, until):  # one alert per pause, not per worker
            self.notifier.alert(
                "adsauth: Login with Amazon refused our client credentials",
                f"Login with Amazon answered {code} to a token refresh: "
                + PAUSE_CAUSES.get(code, PAUSE_CAUSES["invalid_client"]) + "\n\n"
                f"All refreshes are paused until {_when(until)}; they resume by themselves and "
                "pause again if LwA still refuses. Access tokens expire meanwhile.\n\n"
                f"What to do: check that the secret {self.settings.client_secret_name} holds the "
                f'"client_id" ({self.settings.client_id}) and the current "client_secret" of the '
                "security profile in the Login with Amazon console.\n",
            )
