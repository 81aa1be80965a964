"""The interfaces the domain needs. Adapters implement them against AWS and LwA; unit tests
implement them in memory."""

from __future__ import annotations

from typing import Iterable, Protocol

from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    Invitation,
    PendingAuthorization,
    Profile,
    TokenSet,
)
from adsauth.regions import Region


class OnboardingStore(Protocol):
    def create_invitation(self, invitation: Invitation, advertiser: Advertiser | None) -> None: ...
    def get_invitation(self, token_hash: str) -> Invitation | None: ...
    def get_advertiser(self, advertiser_id: str) -> Advertiser | None: ...
    def put_state(self, pending: PendingAuthorization, expires_at: float) -> None: ...
    def get_state(self, state_hash: str) -> PendingAuthorization | None: ...
    def consume_state(self, state_hash: str, now: float) -> bool:
        """Mark the state used; False when it was used already (atomic)."""
    def set_status(
        self,
        advertiser_id: str,
        status: AdvertiserStatus,
        reason: str,
        now: float,
        *,
        unless: AdvertiserStatus | None = None,
    ) -> bool:
        """Set the status, unless the advertiser is in status ``unless`` (then return False)."""
    def record_connection(
        self,
        *,
        advertiser_id: str,
        invitation_hash: str | None,
        profiles: dict[Region, list[Profile]],
        pending_regions: Iterable[Region],
        token_expires_at: float,
        now: float,
    ) -> None: ...
    def list_profiles(self, advertiser_id: str) -> list[Profile]: ...


class TokenVault(Protocol):
    def put_refresh_token(self, advertiser_id: str, refresh_token: str, issued_at: float) -> None: ...
    def put_access_token(self, advertiser_id: str, access_token: str, expires_at: float) -> None: ...


class LwaClient(Protocol):
    def exchange_code(
        self, region: Region, code: str, redirect_uri: str, code_verifier: str | None
    ) -> TokenSet: ...


class ProfilesClient(Protocol):
    def list_profiles(self, region: Region, access_token: str) -> list[Profile]: ...
