"""Onboarding an advertiser: invitation → consent at Amazon → tokens and profiles stored.

Pure domain logic: no boto3, no HTTP. The adapters come in through ``ports``.
"""

from __future__ import annotations

import copy
import logging
import re
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlencode

from adsauth import events, oauth
from adsauth.events import relay
from adsauth.errors import (
    AUTHORIZE_ERRORS,
    AdvertiserUnknown,
    ClientInvalid,
    ClientMisconfigured,
    ClientRejected,
    GrantInvalid,
    InvalidRequest,
    InvitationExpired,
    InvitationReplaced,
    InvitationUnknown,
    InvitationUsed,
    LwaError,
    LwaOutOfTime,
    LwaRefused,
    RequestRejected,
    StateExpired,
    StateInvalid,
    StateUnbound,
    TransitionRefused,
)
from adsauth.lifecycle import REFUSED, grant_for, new_invitation
from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    ConnectionResult,
    ConnectRedirect,
    GrantReceipt,
    LifecycleEvent,
    PendingAuthorization,
    Profile,
    TokenSet,
)
from adsauth.profiles import list_in_regions
from adsauth.ports import EventPublisher, LwaClient, LwaRefresher, OnboardingStore, ProfilesClient, TokenVault
from adsauth.regions import Region
from adsauth.settings import Settings

if TYPE_CHECKING:
    from adsauth.deadline import Deadline

EMAIL = re.compile(r"[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")  # fullmatch only
TOKENISH = re.compile(r"[A-Za-z0-9_\-]{16,128}")  # invitation tokens and states we issue
REFRESH_TOKEN = re.compile(r"Atzr\|[\x21-\x7e]{1,2043}")  # LwA refresh tokens: up to 2048 bytes
MAX_NAME = 200
logger = logging.getLogger("adsauth")  # the handlers' Powertools logger (service "adsauth")


class Onboarding:
    """The onboarding transitions of ``adsauth.lifecycle``: invite, reinvite, cancel (ops),
    start, claim, complete, decline, fail (the advertiser's browser), the manual exchange, import."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: OnboardingStore,
        vault: TokenVault,
        lwa: LwaClient,
        ads: ProfilesClient,
        clock: Callable[[], float] = time.time,
        publisher: EventPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.vault = vault
        self.lwa = lwa
        self.ads = ads
        self.clock = clock
        self.publisher = publisher

    def _announce(self, announced: list[LifecycleEvent]) -> None:
        relay(self.store, self.publisher, announced)

    def within(self, deadline: Deadline | None) -> "Onboarding":
        """This onboarding with every outbound call (exchange, listings, retries, backoff)
        bounded by ``deadline``; what happens where it runs out: ``adsauth.deadline``. Adapters
        without ``within`` (the in-memory fakes) are used as they are."""
        if deadline is None:
            return self
        bound = copy.copy(self)
        for name in ("lwa", "ads"):
            adapter = getattr(self, name)
            if callable(getattr(adapter, "within", None)):
                setattr(bound, name, adapter.within(deadline))
        return bound

    # --- ops: invite, reinvite, cancel ---------------------------------------------------------
    def invite(
        self, *, name: str, email: str, region: Region, ttl_seconds: int | None = None
    ) -> tuple[Advertiser, str]:
        """Create an advertiser (status ``invited``, generation 1) and its invitation; return
        the link token."""
        name, email = validate_identity(name, email)
        if region not in self.settings.allowed_regions:
            raise InvalidRequest("region is not allowed in this deployment")
        ttl = ttl_seconds or self.settings.invitation_ttl_seconds
        now = self.clock()
        advertiser = Advertiser(
            advertiser_id=f"adv-{uuid.uuid4().hex[:12]}", name=name, email=email, region=region,
            status=AdvertiserStatus.INVITED, created_at=now, updated_at=now,
        )
        invitation, token = new_invitation(advertiser, purpose="invite", now=now, ttl_seconds=ttl, generation=1)
        advertiser = replace(advertiser, invitation_hash=invitation.token_hash, invitation_expires_at=invitation.expires_at,
                             invitation_purpose="invite")
        announced = [events.invited(advertiser.advertiser_id, region=region.value, generation=1, purpose="invite",
                                    expires_at=invitation.expires_at, now=now)]
        self.store.create_advertiser(advertiser, invitation, announced)
        self._announce(announced)
        return advertiser, token

    def reinvite(self, advertiser_id: str, *, ttl_seconds: int | None = None, purpose: str = "reinvite") -> tuple[Advertiser, str]:
        """A new invitation of the next generation: every older link and state dies. A connected
        advertiser stays connected (its grant serves until the new consent replaces it)."""
        advertiser = self.store.get_advertiser(advertiser_id)
        if advertiser is None:
            raise AdvertiserUnknown()
        now = self.clock()
        invitation, token = new_invitation(
            advertiser, purpose=purpose, now=now, ttl_seconds=ttl_seconds or self.settings.invitation_ttl_seconds,
            generation=advertiser.generation + 1,
        )
        announced = [events.invited(advertiser_id, region=advertiser.region.value, generation=invitation.generation,
                                    purpose=purpose, expires_at=invitation.expires_at, now=now)]
        if not self.store.issue_invitation(advertiser, invitation, now=now, events=announced):
            raise TransitionRefused(REFUSED["changed"])
        self.store.add_event(advertiser_id, "invited", purpose, now)
        self._announce(announced)
        return self.store.get_advertiser(advertiser_id) or advertiser, token

    def cancel(self, advertiser_id: str) -> Advertiser:
        """Kill the advertiser's open invitation and every flow it started."""
        advertiser = self.store.get_advertiser(advertiser_id)
        if advertiser is None:
            raise AdvertiserUnknown()
        if not advertiser.invitation_hash:
            raise TransitionRefused(REFUSED["no_invitation"])
        now = self.clock()
        if not self.store.cancel_invitation(advertiser, now=now, events=()):
            raise TransitionRefused(REFUSED["changed"])
        self.store.add_event(advertiser_id, "cancelled", "operator", now)
        return self.store.get_advertiser(advertiser_id) or advertiser

    # --- GET /connect/{invitation} -------------------------------------------------------------
    def start(self, invitation_token: str) -> ConnectRedirect:
        """Check the invitation, create state + PKCE verifier, and build the authorize URL."""
        if not TOKENISH.fullmatch(invitation_token or ""):
            raise InvitationUnknown()
        invitation = self.store.get_invitation(oauth.digest(invitation_token))
        if invitation is None:
            raise InvitationUnknown()
        now = self.clock()
        if invitation.completed_at is not None:
            raise InvitationUsed()
        if now >= invitation.expires_at:
            raise InvitationExpired()
        state, verifier = oauth.new_state(), oauth.new_verifier()
        state_hash = oauth.digest(state)
        pending = PendingAuthorization(
            state_hash=state_hash,
            advertiser_id=invitation.advertiser_id,
            invitation_hash=invitation.token_hash,
            region=invitation.region,
            code_challenge=oauth.s256(verifier),
            created_at=now,
            generation=invitation.generation,
        )
        # one transaction: the state, the flow counted on the invitation, the generation checked
        self.store.open_flow(
            pending, state_expires_at=now + self.settings.state_ttl_seconds, now=now,
            max_flows=self.settings.max_flows_per_window, window_seconds=self.settings.attempt_window_seconds,
        )
        query = urlencode(
            {
                "client_id": self.settings.client_id,
                "scope": self.settings.scope,
                "response_type": "code",
                "redirect_uri": self.settings.callback_url,
                "state": state,
                "code_challenge": pending.code_challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoints = self.settings.endpoints[invitation.region]
        return ConnectRedirect(
            authorize_url=f"{endpoints.authorize_url}?{query}",
            cookie_name=oauth.cookie_name(state_hash),
            cookie_value=verifier,
            cookie_max_age=self.settings.state_ttl_seconds,
        )

    # --- GET /callback -------------------------------------------------------------------------
    def check_state(self, state: str | None, cookies: dict[str, str]) -> tuple[PendingAuthorization, str]:
        """Validate the state and its browser binding without consuming it.

        Returns the pending authorization and the PKCE verifier from the cookie."""
        if not state or not TOKENISH.fullmatch(state):
            raise StateInvalid()
        state_hash = oauth.digest(state)
        pending = self.store.get_state(state_hash)
        if pending is None:
            raise StateInvalid()
        if self.clock() >= pending.created_at + self.settings.state_ttl_seconds:
            raise StateExpired()
        verifier = cookies.get(oauth.cookie_name(state_hash))
        if not oauth.verifier_matches(verifier, pending.code_challenge):
            raise StateUnbound()
        return pending, verifier  # type: ignore[return-value]

    def complete(
        self, pending: PendingAuthorization, verifier: str, *, code: str | None, error: str | None
    ) -> ConnectionResult:
        """Finish the flow LwA sent back. With a code: claim the invitation (the state is used up
        in the same transaction), exchange, store, commit. Without: use the state up and record
        the outcome, never over a working grant or an operator's decision."""
        now = self.clock()
        advertiser_id = pending.advertiser_id
        if error is not None or not code:
            self.store.consume_state(pending, now)
            if error == "access_denied":
                announced = [events.declined(advertiser_id, generation=pending.generation, reason="access_denied", now=now)]
                if self.store.set_attempt_outcome(advertiser_id, generation=pending.generation, status=AdvertiserStatus.DECLINED,
                                                  reason="access_denied", now=now, events=announced):
                    self._announce(announced)
                return ConnectionResult("declined", advertiser_id, "access_denied")
            reason = "missing_code" if error is None else (error if error in AUTHORIZE_ERRORS else "authorization_error")
            return self._failed(advertiser_id, reason, pending.generation)
        self.store.claim_invitation(
            pending, now=now, claim_seconds=self.settings.claim_seconds,
            max_calls=self.settings.max_token_calls_per_window, window_seconds=self.settings.attempt_window_seconds,
        )
        return self._connect(
            advertiser_id=advertiser_id,
            generation=pending.generation,
            claim=(pending.invitation_hash, pending.state_hash),
            region=pending.region,
            code=code,
            redirect_uri=self.settings.callback_url,
            verifier=verifier,
        )

    # --- POST /token (manual flow) -------------------------------------------------------------
    def exchange_manual(
        self, *, advertiser_id: str, code: str, redirect_uri: str, region: Region
    ) -> ConnectionResult:
        if region not in self.settings.allowed_regions:
            raise InvalidRequest("region is not allowed in this deployment")
        advertiser = self.store.get_advertiser(advertiser_id)
        if advertiser is None:
            raise AdvertiserUnknown()
        if advertiser.status in (AdvertiserStatus.REVOKED, AdvertiserStatus.CANCELLED) and not advertiser.invitation_open(self.clock()):
            raise TransitionRefused(REFUSED["revoked"])  # ops reconnect it with `reinvite` first
        return self._connect(
            advertiser_id=advertiser_id,
            generation=advertiser.generation,
            claim=None,
            region=region,
            code=code,
            redirect_uri=redirect_uri,
            verifier=None,
        )

    # --- shared exchange path ------------------------------------------------------------------
    def _connect(
        self,
        *,
        advertiser_id: str,
        generation: int,
        claim: tuple[str, str] | None,
        region: Region,
        code: str,
        redirect_uri: str,
        verifier: str | None,
    ) -> ConnectionResult:
        advertiser = self.store.get_advertiser(advertiser_id)
        if advertiser is None or advertiser.generation != generation:
            self._release(claim)
            raise InvitationReplaced()
        try:
            tokens = self.lwa.exchange_code(region, code, redirect_uri, verifier)
        except GrantInvalid:  # expired, used, or another redirect_uri / verifier
            return self._failed(advertiser_id, "code_rejected", generation, claim)
        except RequestRejected:  # this exchange was malformed (e.g. a missing verifier)
            return self._failed(advertiser_id, "request_rejected", generation, claim)
        except (ClientInvalid, ClientMisconfigured):
            return self._failed(advertiser_id, "client_misconfigured", generation, claim)
        except ClientRejected as exc:  # unauthorized_client, invalid_scope, unsupported_grant_type
            return self._failed(advertiser_id, exc.code, generation, claim)
        except LwaRefused:
            return self._failed(advertiser_id, "lwa_refused", generation, claim)
        except LwaOutOfTime:
            return self._failed(advertiser_id, "out_of_time", generation, claim)
        except LwaError:
            return self._failed(advertiser_id, "amazon_unavailable", generation, claim)
        now = self.clock()
        replacing = advertiser.status is AdvertiserStatus.CONNECTED  # a working grant: put back if we lose
        grant = grant_for(self.settings, now, tokens, now=now)
        source = "invitation" if claim else "manual_exchange"
        announced = [events.connected(
            advertiser_id, region=advertiser.region.value, generation=generation, source=source,
            consented_at=grant.consented_at, grant_expires_at=grant.expires_at, basis=grant.basis, now=now,
            reconsent=replacing,
        )]
        receipt: GrantReceipt | None = None
        # Listing profiles only reads, so it runs while the tokens are being stored: the callback
        # costs max(secret writes, slowest region) instead of their sum.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="listing") as pool:
            listing = pool.submit(self.fetch_profiles, tokens.access_token)
            committed = False
            try:
                # a revoke, reinvite or cancel during the exchange: nothing is stored (consistent read)
                latest = self.store.get_advertiser(advertiser_id)
                if latest is not None and latest.generation == generation:
                    # the refresh token is the grant itself: it is persisted before anything else is stored
                    receipt = self.vault.put_grant(advertiser_id, tokens, now)
                    profiles, pending_regions = listing.result()
                    committed = self.store.complete_connection(
                        advertiser_id=advertiser_id, generation=generation,
                        invitation_hash=claim[0] if claim else None, state_hash=claim[1] if claim else None,
                        grant=grant, token_expires_at=tokens.expires_at, pending_regions=pending_regions, now=now,
                        events=announced,
                    )
            except Exception as exc:  # noqa: BLE001 - Secrets Manager or DynamoDB failed after LwA's answer
                # The code is spent, so this attempt cannot be completed: say so (status and page)
                # instead of leaving the advertiser "invited"; what was stored is taken back, and
                # the claim let go, so the link works again.
                _log_failure("storing the connection failed", exc, advertiser_id)
                self._undo(advertiser_id, receipt)
                return self._failed(advertiser_id, STORAGE_FAILED, generation, claim)
        if not committed:
            # a revoke, reinvite or cancel won the race: the new grant is taken back
            self._undo(advertiser_id, receipt)
            self._release(claim)
            raise InvitationReplaced()
        try:
            self.store.merge_profiles(advertiser_id, profiles, now)
            self.store.add_event(advertiser_id, "connected", source, now)
        except Exception as exc:  # noqa: BLE001 - the connection is stored: profiles are retried by the refresher
            _log_failure("the profiles or the connected event were not recorded", exc, advertiser_id)
        self._announce(announced)
        relay(self.store, self.publisher)  # ProfilesChanged, and anything an earlier run left
        return ConnectionResult(
            "connected",
            advertiser_id,
            regions_ok=tuple(r.value for r in profiles),
            regions_pending=tuple(r.value for r in pending_regions),
            profile_count=sum(len(p) for p in profiles.values()),
        )

    def _undo(self, advertiser_id: str, receipt: GrantReceipt | None) -> None:
        """Take back what this flow's grant stored (``put_grant`` took back its own partial
        writes: no receipt, nothing stored). Only what nobody replaced since is touched."""
        if receipt is None:
            return
        current = self.store.get_advertiser(advertiser_id)
        revoked = current is None or current.status in (AdvertiserStatus.REVOKED, AdvertiserStatus.CANCELLED)
        try:
            self.vault.undo_grant(advertiser_id, receipt, revoked=revoked)
        except Exception as exc:  # noqa: BLE001 - logged; downstream never reads it (not connected)
            _log_failure("undoing a lost grant failed", exc, advertiser_id)

    def _release(self, claim: tuple[str, str] | None) -> None:
        if claim:
            try:
                self.store.release_invitation(*claim)
            except Exception as exc:  # noqa: BLE001 - the claim expires by itself (claim_seconds)
                _log_failure("releasing the invitation failed", exc, "")

    def fetch_profiles(self, access_token: str) -> tuple[dict[Region, list[Profile]], list[Region]]:
        """List profiles in every allowed region at once; a region that fails is pending."""
        return list_in_regions(self.ads, self.settings.allowed_regions, access_token)

    def _failed(self, advertiser_id: str, reason: str, generation: int, claim: tuple[str, str] | None = None) -> ConnectionResult:
        # the claim is let go first (the same link may be retried); a failed attempt never
        # undoes a working connection nor an operator's decision
        self._release(claim)
        self.store.set_attempt_outcome(
            advertiser_id, generation=generation, status=AdvertiserStatus.FAILED, reason=reason, now=self.clock()
        )
        return ConnectionResult(outcome_for(reason), advertiser_id, reason)

    # --- ops: import an existing refresh token -------------------------------------------------
    def import_advertiser(
        self, *, name: str, email: str, region: Region, refresh_token: str, consented_at: float | None,
        lwa: LwaRefresher,
    ) -> tuple[Advertiser, ConnectionResult]:
        """A ``connected`` advertiser from a refresh token obtained elsewhere (Amazon's manual
        flow, another tool): proven by one refresh at ``region``'s token URL, its profiles listed
        in every region, its grant's end from ``consented_at`` (None: unknown, then the earliest
        end it could have)."""
        name, email = validate_identity(name, email)
        if region not in self.settings.allowed_regions:
            raise InvalidRequest("region is not allowed in this deployment")
        if not REFRESH_TOKEN.fullmatch(refresh_token or ""):
            raise InvalidRequest("the refresh token is not an LwA refresh token (Atzr|…)")
        now = self.clock()
        if consented_at is not None and consented_at > now:
            raise InvalidRequest("the consent date is in the future")
        # refused before LwA is asked: a refresh may rotate the token, and the rotated one would be lost
        by_date = grant_for(self.settings, consented_at, now=now)
        if by_date.basis == "consent" and by_date.expires_at is not None and by_date.expires_at <= now:
            raise InvalidRequest("by its consent date this grant has expired already")
        grant_key = oauth.digest(refresh_token)  # only its hash is stored, as for states
        if self.store.imported_grant(grant_key) is not None:
            raise InvalidRequest("this refresh token was imported already")
        tokens = lwa.refresh(region, refresh_token)  # GrantInvalid: the token does not work
        if tokens.refresh_token != refresh_token:
            refresh_token = tokens.refresh_token  # rotated on the way: the new one is the grant
        grant = grant_for(self.settings, consented_at, tokens if tokens.refresh_token_expires_in else None, now=now)
        if grant.expires_at is not None and grant.expires_at <= now:
            raise InvalidRequest("by its consent date this grant has expired already")
        advertiser = Advertiser(
            advertiser_id=f"adv-{uuid.uuid4().hex[:12]}", name=name, email=email, region=region,
            status=AdvertiserStatus.CONNECTED, created_at=now, updated_at=now, status_reason="",
            token_expires_at=tokens.expires_at, connected_at=now, consented_at=grant.consented_at,
            grant_expires_at=grant.expires_at, grant_expiry_basis=grant.basis, profiles_at=now,
        )
        profiles, pending_regions = self.fetch_profiles(tokens.access_token)
        advertiser = replace(advertiser, pending_regions=tuple(pending_regions))
        self.vault.put_grant(advertiser.advertiser_id, TokenSet(tokens.access_token, refresh_token, tokens.expires_at), now)
        announced = [events.connected(
            advertiser.advertiser_id, region=region.value, generation=1, source="import",
            consented_at=grant.consented_at, grant_expires_at=grant.expires_at, basis=grant.basis, now=now, reconsent=False,
        )]
        try:
            self.store.create_advertiser(advertiser, None, announced, grant_key=grant_key)
        except Exception:
            self.vault.delete_tokens(advertiser.advertiser_id)
            raise
        self.store.merge_profiles(advertiser.advertiser_id, profiles, now)
        self.store.add_event(advertiser.advertiser_id, "connected", "import", now)
        self._announce(announced)
        relay(self.store, self.publisher)
        return advertiser, ConnectionResult(
            "connected", advertiser.advertiser_id,
            regions_ok=tuple(r.value for r in profiles), regions_pending=tuple(r.value for r in pending_regions),
            profile_count=sum(len(p) for p in profiles.values()),
        )


def validate_identity(name: str, email: str) -> tuple[str, str]:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidRequest("name must be 1-200 printable characters")
    if not isinstance(email, str) or not EMAIL.fullmatch(email):
        raise InvalidRequest("email is not a valid address")
    return name, email


STORAGE_FAILED = "storage_unavailable"  # Secrets Manager or DynamoDB failed after the exchange


def _log_failure(message: str, exc: BaseException, advertiser_id: str) -> None:
    """Log the error's type and where it happened, never its text (AWS errors can echo values)."""
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    where = [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}:{f.name}" for f in frames]
    logger.error(message, extra={"advertiser_id": advertiser_id, "error_type": type(exc).__name__, "frames": where})


# Failures the advertiser can fix by opening the invitation link again; the rest need the operator.
RETRYABLE = frozenset(
    {"code_rejected", "request_rejected", "lwa_refused", "amazon_unavailable", "out_of_time", "missing_code",
     "server_error", "temporarily_unavailable"}
)
# Failures of the platform itself (the LwA client, its grant types or scope), the same for every
# advertiser: they raise the platform alarm (``LwaInvalidClient``), at the authorize redirect too.
PLATFORM_FAILURES = frozenset(
    {"client_misconfigured", "unauthorized_client", "invalid_scope", "unsupported_grant_type"}
)


def outcome_for(reason: str) -> str:
    return "retry" if reason in RETRYABLE else "failed"
