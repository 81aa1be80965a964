"""Domain records. Token values are held only in ``TokenSet``, whose repr never shows them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from adsauth.regions import Region


class AdvertiserStatus(str, enum.Enum):
    INVITED = "invited"
    CONNECTED = "connected"
    DECLINED = "declined"
    FAILED = "failed"
    NEEDS_REAUTH = "needs_reauth"
    REVOKED = "revoked"
    CANCELLED = "cancelled"  # its invitation was cancelled before it ever connected


# statuses in which an attempt's outcome (declined, failed) may be recorded: never over a grant
# that works (connected) nor over an operator's decision (revoked, cancelled, needs_reauth)
ATTEMPT_STATUSES = frozenset({AdvertiserStatus.INVITED, AdvertiserStatus.DECLINED, AdvertiserStatus.FAILED})


@dataclass(frozen=True)
class Invitation:
    token_hash: str
    advertiser_id: str
    region: Region
    created_at: float
    expires_at: float
    completed_at: float | None = None
    generation: int = 1  # the advertiser's generation it was issued in; older ones are dead
    purpose: str = "invite"  # invite | reinvite | reconsent
    claimed_by: str | None = None  # the state hash of the flow exchanging a code right now
    claim_until: float | None = None
    # fixed-window counters (window number, count): flows opened, token calls made
    flow_window: int = 0
    flows: int = 0
    call_window: int = 0
    calls: int = 0


@dataclass
class Advertiser:
    advertiser_id: str
    name: str
    email: str
    region: Region
    status: AdvertiserStatus
    created_at: float
    updated_at: float
    status_reason: str = ""
    token_expires_at: float | None = None
    connected_at: float | None = None
    pending_regions: tuple[Region, ...] = ()
    profiles_at: float | None = None  # last listing of the profiles (any outcome)
    last_refresh_at: float | None = None
    last_refresh_error: str = ""  # why the last refresh failed (an error code), "" after a success
    # the invitation generation: bumped by reinvite, re-consent, cancel and revoke; a link or a
    # state of an older generation is dead
    generation: int = 1
    invitation_hash: str = ""  # the open invitation of this generation ("" when none)
    invitation_expires_at: float | None = None
    invitation_purpose: str = ""
    # the grant (the refresh token's consent): when it was given and when Amazon ends it
    consented_at: float | None = None
    grant_expires_at: float | None = None
    grant_expiry_basis: str = ""  # consent | token_response | unknown_consent | none (see grants)
    reconsent_pending: bool = False  # a re-consent invitation is out; the grant still serves
    reconsent_leads_sent: tuple[int, ...] = ()  # the lead days whose re-consent was started
    pack: str = ""  # the pack holding its tokens (``adsauth.packs``); "" = its own two secrets

    def invitation_open(self, now: float) -> bool:
        return bool(self.invitation_hash) and (self.invitation_expires_at or 0) > now


@dataclass(frozen=True)
class PendingAuthorization:
    """What the state stands for: stored under the state's hash, never the state itself."""

    state_hash: str
    advertiser_id: str
    invitation_hash: str
    region: Region
    code_challenge: str
    created_at: float
    generation: int = 1


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float = 0.0
    # draft-ietf-oauth-refresh-token-expiration: seconds the refresh token lives, when LwA says
    refresh_token_expires_in: float | None = None


@dataclass(frozen=True)
class GrantReceipt:
    """Which secret versions a new grant replaced (None: none), so a completion that lost its
    commit can put them back. Version ids only, no value."""

    previous_refresh_version: str | None
    new_refresh_version: str | None
    previous_access_version: str | None
    new_access_version: str | None = None


@dataclass(frozen=True)
class Grant:
    """When a grant was given and when it ends (``expires_at`` None: no known end)."""

    consented_at: float | None
    expires_at: float | None
    basis: str  # consent | token_response | unknown_consent | none


@dataclass(frozen=True)
class LifecycleEvent:
    """One event for the systems around adsauth (EventBridge, source ``adsauth``). ``detail``
    holds ids, statuses, times and reasons only: never a token, code, state or e-mail body."""

    detail_type: str
    advertiser_id: str
    detail: dict
    event_id: str = ""
    at: float = 0.0


@dataclass(frozen=True)
class Profile:
    profile_id: int
    region: Region
    country_code: str
    currency_code: str
    timezone: str
    marketplace_id: str
    account_id: str
    account_type: str
    account_name: str
    daily_budget: float | None = None
    valid_payment_method: bool | None = None
    status: str = "active"
    removed_at: float | None = None

    def public(self) -> dict:
        return {
            "profileId": self.profile_id,
            "region": self.region.value,
            "countryCode": self.country_code,
            "currencyCode": self.currency_code,
            "timezone": self.timezone,
            "marketplaceStringId": self.marketplace_id,
            "accountId": self.account_id,
            "accountType": self.account_type,
            "accountName": self.account_name,
            "status": self.status,
        }


@dataclass(frozen=True)
class ConnectRedirect:
    """The answer to ``GET /connect``: where to send the browser and the binding cookie to set."""

    authorize_url: str = field(repr=False)
    cookie_name: str
    cookie_value: str = field(repr=False)
    cookie_max_age: int


@dataclass(frozen=True)
class ConnectionResult:
    """How one authorization ended. Safe to store (idempotency) and to show: no token inside."""

    outcome: str  # connected | declined | failed | retry
    advertiser_id: str
    reason: str = ""
    regions_ok: tuple[str, ...] = ()
    regions_pending: tuple[str, ...] = ()
    profile_count: int = 0


# --- the refresher ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DueSchedule:
    """When an advertiser needs the refresher, as one deadline in the ``byExpiry`` index.

    The dispatcher takes every advertiser whose deadline falls within the lead window. A token's
    deadline is its expiry, so it is renewed ``lead_seconds`` before it runs out. Profile work
    (the daily listing, or a retry of regions that failed) gets the deadline "due time + lead", so
    it is dispatched when it is due.
    """

    lead_seconds: float = 720
    profile_refresh_seconds: float = 86400
    pending_retry_seconds: float = 900  # a region that failed is asked again after 15 minutes
    redispatch_seconds: float = 300  # a dispatched advertiser is not queued again for 5 minutes

    def profiles_due_at(self, profiles_at: float | None, pending: tuple | list) -> float:
        last = profiles_at or 0.0
        return last + (self.pending_retry_seconds if pending else self.profile_refresh_seconds)

    def deadline(
        self, token_expires_at: float, profiles_at: float | None, pending: tuple | list, grant_ends_at: float | None = None
    ) -> float:
        """``grant_ends_at``: a grant's known end, which the refresher must see before it comes
        (it moves the advertiser to ``needs_reauth`` within the lead window)."""
        due = min(token_expires_at, self.profiles_due_at(profiles_at, pending) + self.lead_seconds)
        return min(due, grant_ends_at) if grant_ends_at is not None else due

    def token_due(self, token_expires_at: float | None, now: float) -> bool:
        return token_expires_at is None or token_expires_at - now <= self.lead_seconds


@dataclass(frozen=True)
class Lease:
    """A worker's exclusive right to refresh one advertiser until ``until``. ``fence`` grows by
    one with every lease taken on the advertiser, so a later holder always has a larger one."""

    advertiser_id: str
    owner: str
    fence: int
    until: float
    # the grant the lease was taken on (its ``connected_at``): the refresher's writes are for that
    # grant only, so a re-consent completed meanwhile is never marked needs_reauth nor overwritten
    grant_at: float | None = None


@dataclass(frozen=True)
class StoredRefreshToken:
    """The refresh token as read from the vault, with the secret version it came from."""

    value: str = field(repr=False)
    version: str


@dataclass(frozen=True)
class DueAdvertiser:
    advertiser_id: str
    due_sk: str  # the deadline as stored, to snooze it only if no one moved it meanwhile
    token_expires_at: float | None = None  # for the dispatcher's oldest-token-age metric
    pack: str = ""  # its pack ("" = its own secrets): the dispatcher queues a pack as one job
    due_at: float = 0.0  # the deadline as a number


@dataclass(frozen=True)
class TokenEvent:
    """One entry of an advertiser's audit trail. Never holds a token value."""

    advertiser_id: str
    at: float
    event: str  # invited | connected | refreshed | rotated | revoked | cancelled | needs_reauth | …
    cause: str


@dataclass(frozen=True)
class ProfilesResult:
    regions_ok: tuple[str, ...] = ()
    regions_pending: tuple[str, ...] = ()
    profile_count: int = 0


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh attempt did. Safe to log: no token inside.

    ``outcome``: ``refreshed``; ``fresh`` (nothing due, no LwA call); ``busy`` (another worker
    holds the lease); ``not_connected``; ``needs_reauth`` (LwA refused the grant);
    ``client_invalid`` (LwA refused our client: refreshes are paused); ``refused`` (LwA refused
    the request itself, ``invalid_request`` or an unknown code: not retried by SQS); ``paused``
    (they were paused already); ``superseded`` (a newer token was stored while we were refreshing).
    """

    advertiser_id: str
    outcome: str
    reason: str = ""
    rotated: bool = False
    token_expires_at: float | None = None
    profiles: ProfilesResult | None = None
    reconsent_lead: int | None = None  # a re-consent was started for this lead (days)
    grant_expiring: bool = False  # the grant ends within the alarm window, not re-consented
