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


@dataclass(frozen=True)
class Invitation:
    token_hash: str
    advertiser_id: str
    region: Region
    created_at: float
    expires_at: float
    completed_at: float | None = None


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


@dataclass(frozen=True)
class PendingAuthorization:
    """What the state stands for: stored under the state's hash, never the state itself."""

    state_hash: str
    advertiser_id: str
    invitation_hash: str
    region: Region
    code_challenge: str
    created_at: float


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float = 0.0


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
