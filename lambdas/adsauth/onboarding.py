"""Onboarding an advertiser: invitation → consent at Amazon → tokens and profiles stored.

Pure domain logic: no boto3, no HTTP. The adapters come in through ``ports``.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from urllib.parse import urlencode

from adsauth import oauth
from adsauth.errors import (
    AUTHORIZE_ERRORS,
    AdvertiserUnknown,
    ClientInvalid,
    ClientMisconfigured,
    GrantInvalid,
    InvalidRequest,
    InvitationExpired,
    InvitationUnknown,
    InvitationUsed,
    LwaError,
    StateExpired,
    StateInvalid,
    StateReplayed,
    StateUnbound,
)
from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    ConnectionResult,
    ConnectRedirect,
    Invitation,
    PendingAuthorization,
    Profile,
)
from adsauth.profiles import list_in_regions
from adsauth.ports import LwaClient, OnboardingStore, ProfilesClient, TokenVault
from adsauth.regions import Region
from adsauth.settings import Settings

EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
TOKENISH = re.compile(r"^[A-Za-z0-9_\-]{16,128}$")  # invitation tokens and states we issue
MAX_NAME = 200
logger = logging.getLogger("adsauth")  # the handlers' Powertools logger (service "adsauth")


class Onboarding:
    def __init__(
        self,
        *,
        settings: Settings,
        store: OnboardingStore,
        vault: TokenVault,
        lwa: LwaClient,
        ads: ProfilesClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.vault = vault
        self.lwa = lwa
        self.ads = ads
        self.clock = clock

    # --- ops: invite ---------------------------------------------------------------------------
    def invite(
        self, *, name: str, email: str, region: Region, ttl_seconds: int | None = None
    ) -> tuple[Advertiser, str]:
        """Create an advertiser (status ``invited``) and its invitation; return the link token."""
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise InvalidRequest("name must be 1-200 printable characters")
        if not EMAIL.match(email or ""):
            raise InvalidRequest("email is not a valid address")
        if region not in self.settings.allowed_regions:
            raise InvalidRequest("region is not allowed in this deployment")
        ttl = ttl_seconds or self.settings.invitation_ttl_seconds
        now = self.clock()
        token = oauth.new_invitation_token()
        advertiser = Advertiser(
            advertiser_id=f"adv-{uuid.uuid4().hex[:12]}",
            name=name,
            email=email,
            region=region,
            status=AdvertiserStatus.INVITED,
            created_at=now,
            updated_at=now,
        )
        invitation = Invitation(
            token_hash=oauth.digest(token),
            advertiser_id=advertiser.advertiser_id,
            region=region,
            created_at=now,
            expires_at=now + ttl,
        )
        self.store.create_invitation(invitation, advertiser)
        return advertiser, token

    def reinvite(self, advertiser_id: str, *, ttl_seconds: int | None = None) -> tuple[Advertiser, str]:
        """A new invitation for a known advertiser (``needs_reauth``, ``revoked``, ``declined``…);
        completing it replaces the stored grant."""
        advertiser = self.store.get_advertiser(advertiser_id)
        if advertiser is None:
            raise AdvertiserUnknown()
        now = self.clock()
        token = oauth.new_invitation_token()
        invitation = Invitation(
            token_hash=oauth.digest(token),
            advertiser_id=advertiser_id,
            region=advertiser.region,
            created_at=now,
            expires_at=now + (ttl_seconds or self.settings.invitation_ttl_seconds),
        )
        self.store.create_invitation(invitation, None)
        return advertiser, token

    # --- GET /connect/{invitation} -------------------------------------------------------------
    def start(self, invitation_token: str) -> ConnectRedirect:
        """Check the invitation, create state + PKCE verifier, and build the authorize URL."""
        if not TOKENISH.match(invitation_token or ""):
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
        )
        self.store.put_state(pending, expires_at=now + self.settings.state_ttl_seconds)
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
        if not state or not TOKENISH.match(state):
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
        """Consume the state, then finish the flow LwA sent back (code or error)."""
        now = self.clock()
        if not self.store.consume_state(pending.state_hash, now):
            raise StateReplayed()
        advertiser_id = pending.advertiser_id
        if error is not None:
            if error == "access_denied":
                # a decline never undoes a connection made earlier (e.g. in another tab)
                self.store.set_status(
                    advertiser_id, AdvertiserStatus.DECLINED, "access_denied", now, unless=AdvertiserStatus.CONNECTED
                )
                return ConnectionResult("declined", advertiser_id, "access_denied")
            return self._failed(advertiser_id, error if error in AUTHORIZE_ERRORS else "authorization_error")
        if not code:
            return self._failed(advertiser_id, "missing_code")
        return self._connect(
            advertiser_id=advertiser_id,
            invitation_hash=pending.invitation_hash,
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
        if self.store.get_advertiser(advertiser_id) is None:
            raise AdvertiserUnknown()
        return self._connect(
            advertiser_id=advertiser_id,
            invitation_hash=None,
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
        invitation_hash: str | None,
        region: Region,
        code: str,
        redirect_uri: str,
        verifier: str | None,
    ) -> ConnectionResult:
        try:
            tokens = self.lwa.exchange_code(region, code, redirect_uri, verifier)
        except GrantInvalid:
            return self._failed(advertiser_id, "code_rejected")
        except (ClientInvalid, ClientMisconfigured):
            return self._failed(advertiser_id, "client_misconfigured")
        except LwaError:
            return self._failed(advertiser_id, "amazon_unavailable")
        now = self.clock()
        # Listing profiles only reads, so it runs while the tokens are being stored: the callback
        # costs max(secret writes, slowest region) instead of their sum.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="listing") as pool:
            listing = pool.submit(self.fetch_profiles, tokens.access_token)
            try:
                # the refresh token is the grant itself: it is persisted before anything else is stored
                self.vault.put_refresh_token(advertiser_id, tokens.refresh_token, now)
                self.vault.put_access_token(advertiser_id, tokens.access_token, tokens.expires_at)
                profiles, pending_regions = listing.result()
                self.store.record_connection(
                    advertiser_id=advertiser_id,
                    invitation_hash=invitation_hash,
                    profiles=profiles,
                    pending_regions=pending_regions,
                    token_expires_at=tokens.expires_at,
                    now=now,
                )
            except Exception as exc:  # noqa: BLE001 - Secrets Manager or DynamoDB failed after LwA's answer
                # The code is spent, so this attempt cannot be completed: say so (status and page)
                # instead of leaving the advertiser "invited"; the invitation is not completed, so
                # its link works again, and a new consent replaces whatever part was stored.
                _log_failure("storing the connection failed", exc, advertiser_id)
                return self._failed(advertiser_id, STORAGE_FAILED)
        try:
            self.store.add_event(advertiser_id, "connected", "invitation" if invitation_hash else "manual_exchange", now)
        except Exception as exc:  # noqa: BLE001 - the connection is stored: an audit entry does not undo it
            _log_failure("the connected event was not recorded", exc, advertiser_id)
        return ConnectionResult(
            "connected",
            advertiser_id,
            regions_ok=tuple(r.value for r in profiles),
            regions_pending=tuple(r.value for r in pending_regions),
            profile_count=sum(len(p) for p in profiles.values()),
        )

    def fetch_profiles(self, access_token: str) -> tuple[dict[Region, list[Profile]], list[Region]]:
        """List profiles in every allowed region at once; a region that fails is pending."""
        return list_in_regions(self.ads, self.settings.allowed_regions, access_token)

    def _failed(self, advertiser_id: str, reason: str) -> ConnectionResult:
        # a failed attempt never undoes a working connection: its stored grant is still valid
        self.store.set_status(
            advertiser_id, AdvertiserStatus.FAILED, reason, self.clock(), unless=AdvertiserStatus.CONNECTED
        )
        return ConnectionResult(outcome_for(reason), advertiser_id, reason)


STORAGE_FAILED = "storage_unavailable"  # Secrets Manager or DynamoDB failed after the exchange


def _log_failure(message: str, exc: BaseException, advertiser_id: str) -> None:
    """Log the error's type and where it happened, never its text (AWS errors can echo values)."""
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    where = [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}:{f.name}" for f in frames]
    logger.error(message, extra={"advertiser_id": advertiser_id, "error_type": type(exc).__name__, "frames": where})


# Failures the advertiser can fix by opening the invitation link again; the rest need the operator.
RETRYABLE = frozenset(
    {"code_rejected", "amazon_unavailable", "missing_code", "server_error", "temporarily_unavailable"}
)


def outcome_for(reason: str) -> str:
    return "retry" if reason in RETRYABLE else "failed"
