"""The interfaces the domain needs. Adapters implement them against AWS and LwA; unit tests
implement them in memory."""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    DueAdvertiser,
    Invitation,
    Lease,
    PendingAuthorization,
    Profile,
    StoredRefreshToken,
    TokenEvent,
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
    def add_event(self, advertiser_id: str, event: str, cause: str, now: float) -> None: ...


class RefreshStore(Protocol):
    """What the refresher needs from the table. Every write that follows a refresh is conditional
    on the lease it was made under."""

    def get_advertiser(self, advertiser_id: str) -> Advertiser | None: ...
    def list_profiles(self, advertiser_id: str) -> list[Profile]: ...
    def set_status(self, advertiser_id: str, status: AdvertiserStatus, reason: str, now: float) -> bool: ...
    def due_advertisers(self, before: float) -> Iterable[DueAdvertiser]:
        """Connected advertisers whose deadline is before ``before`` (an index query)."""
    def snooze(self, due: DueAdvertiser, until: float) -> bool:
        """Move the deadline to ``until`` unless someone changed it since it was read."""
    def set_deadline(self, advertiser_id: str, due_at: float) -> None: ...
    def acquire_lease(self, advertiser_id: str, owner: str, now: float, until: float) -> tuple[Lease, Advertiser] | None:
        """Take the lease unless another owner holds an unexpired one; returns the advertiser as
        it was when the lease was taken."""
    def hold_lease(self, lease: Lease, now: float, until: float) -> Lease | None:
        """Extend a lease still held (same owner, same fence); None when it was lost."""
    def release_lease(self, lease: Lease) -> None: ...
    def record_refresh(
        self,
        advertiser_id: str,
        *,
        lease: Lease,
        token_expires_at: float,
        due_at: float,
        now: float,
        profiles_at: float | None = None,
        pending_regions: Sequence[Region] | None = None,
    ) -> bool: ...
    def record_refresh_error(self, advertiser_id: str, reason: str, now: float) -> None: ...
    def mark_needs_reauth(self, advertiser_id: str, reason: str, now: float, lease: Lease) -> bool: ...
    def merge_profiles(self, advertiser_id: str, found: dict[Region, list[Profile]], now: float) -> None: ...
    def add_event(self, advertiser_id: str, event: str, cause: str, now: float) -> None: ...
    def list_events(self, advertiser_id: str, limit: int = 20) -> list[TokenEvent]: ...
    def platform_paused_until(self, now: float) -> float | None: ...
    def pause_platform(self, reason: str, now: float, until: float) -> bool:
        """Pause refreshes until ``until``; True when this call started the pause."""


class TokenVault(Protocol):
    def put_refresh_token(self, advertiser_id: str, refresh_token: str, issued_at: float) -> None: ...
    def put_access_token(self, advertiser_id: str, access_token: str, expires_at: float) -> None: ...


class RefreshVault(TokenVault, Protocol):
    def get_refresh_token(self, advertiser_id: str) -> StoredRefreshToken: ...
    def replace_refresh_token(
        self, advertiser_id: str, refresh_token: str, issued_at: float, *, replaces: str, fence: int
    ) -> None:
        """Store ``refresh_token`` as the successor of version ``replaces``; raises
        ``RefreshTokenSuperseded`` when that version already has a successor."""
    def delete_tokens(self, advertiser_id: str) -> None: ...


class LwaClient(Protocol):
    def exchange_code(
        self, region: Region, code: str, redirect_uri: str, code_verifier: str | None
    ) -> TokenSet: ...


class LwaRefresher(Protocol):
    def refresh(self, region: Region, refresh_token: str) -> TokenSet: ...


class RefreshQueue(Protocol):
    def send(self, advertiser_ids: Sequence[str]) -> None:
        """Queue one refresh job per advertiser (the adapter sends batches of 10)."""


class Notifier(Protocol):
    def alert(self, subject: str, message: str) -> None: ...


class ProfilesClient(Protocol):
    def list_profiles(self, region: Region, access_token: str) -> list[Profile]: ...
