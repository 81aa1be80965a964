"""The interfaces the domain needs. Adapters implement them against AWS and LwA; unit tests
implement them in memory."""

from __future__ import annotations

from typing import Iterable, Mapping, Protocol, Sequence

from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    DueAdvertiser,
    Grant,
    GrantReceipt,
    Invitation,
    LifecycleEvent,
    Lease,
    PendingAuthorization,
    Profile,
    StoredRefreshToken,
    TokenEvent,
    TokenSet,
)
from adsauth.packs import PackInfo, PackJob, PackValue
from adsauth.regions import Region


class OnboardingStore(Protocol):
    """The onboarding transitions (see ``adsauth.lifecycle``): each is one conditional write or
    transaction; a refused one changes nothing."""

    events_enabled: bool

    def create_advertiser(self, advertiser: Advertiser, invitation: Invitation | None, events: Iterable[LifecycleEvent],
                          *, grant_key: str | None = None) -> None: ...
    def imported_grant(self, grant_key: str) -> str | None: ...
    def issue_invitation(self, advertiser: Advertiser, invitation: Invitation, *, now: float,
                         events: Iterable[LifecycleEvent], reconsent_leads: Sequence[int] = ()) -> bool: ...
    def cancel_invitation(self, advertiser: Advertiser, *, now: float, events: Iterable[LifecycleEvent]) -> bool: ...
    def get_invitation(self, token_hash: str) -> Invitation | None: ...
    def get_advertiser(self, advertiser_id: str) -> Advertiser | None: ...
    def open_flow(self, pending: PendingAuthorization, *, state_expires_at: float, now: float, max_flows: int,
                  window_seconds: int) -> None: ...
    def get_state(self, state_hash: str) -> PendingAuthorization | None: ...
    def consume_state(self, pending: PendingAuthorization, now: float) -> None: ...
    def claim_invitation(self, pending: PendingAuthorization, *, now: float, claim_seconds: int, max_calls: int,
                         window_seconds: int) -> None: ...
    def release_invitation(self, invitation_hash: str, state_hash: str) -> bool: ...
    def set_attempt_outcome(self, advertiser_id: str, *, generation: int, status: AdvertiserStatus, reason: str,
                            now: float, events: Iterable[LifecycleEvent] = ()) -> bool: ...
    def complete_connection(self, *, advertiser_id: str, generation: int, invitation_hash: str | None,
                            state_hash: str | None, grant: Grant, token_expires_at: float,
                            pending_regions: Iterable[Region], now: float, events: Iterable[LifecycleEvent]) -> bool: ...
    def list_profiles(self, advertiser_id: str) -> list[Profile]: ...
    def merge_profiles(self, advertiser_id: str, found: dict[Region, list[Profile]], now: float) -> object: ...
    def add_event(self, advertiser_id: str, event: str, cause: str, now: float) -> None: ...
    def pending_events(self, limit: int = 100) -> list[LifecycleEvent]: ...
    def forget_events(self, event_ids: Sequence[str]) -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[LifecycleEvent]) -> list[str]:
        """Send the events; return the ids accepted."""


class RefreshStore(Protocol):
    """What the refresher needs from the table. Every write that follows a refresh is conditional
    on the lease it was made under."""

    def get_advertiser(self, advertiser_id: str) -> Advertiser | None: ...
    def list_profiles(self, advertiser_id: str) -> list[Profile]: ...
    def revoke_advertiser(self, advertiser: Advertiser, *, cause: str, now: float, events: Iterable[LifecycleEvent]) -> bool: ...
    def issue_invitation(self, advertiser: Advertiser, invitation: Invitation, *, now: float,
                         events: Iterable[LifecycleEvent], reconsent_leads: Sequence[int] = ()) -> bool: ...
    def due_advertisers(self, before: float) -> Iterable[DueAdvertiser]:
        """Connected advertisers whose deadline is before ``before`` (an index query)."""
    def snooze(self, due: DueAdvertiser, until: float) -> bool:
        """Move the deadline to ``until`` unless someone changed it since it was read."""
    def set_deadline(self, advertiser_id: str, due_at: float) -> None: ...
    def acquire_dispatch_lease(self, owner: str, now: float, until: float) -> bool:
        """Take the one dispatcher run's lease when it is absent, lapsed or already ``owner``'s."""
    def release_dispatch_lease(self, owner: str) -> bool:
        """End the dispatch lease if ``owner`` still holds it."""
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
        pack: str | None = None,
    ) -> bool:
        """``pack``: None leaves the advertiser's ``pack`` as it is, "" removes it (its own
        secrets hold its tokens), an id sets it; in the same conditional write."""
    def record_refresh_error(self, advertiser_id: str, reason: str, now: float) -> None: ...
    def record_grant(self, advertiser_id: str, grant: Grant, lease: Lease) -> bool: ...
    def note_reconsent_leads(self, advertiser: Advertiser, leads: Sequence[int], lease: Lease,
                             events: Iterable[LifecycleEvent] = ()) -> bool: ...
    def mark_needs_reauth(self, advertiser_id: str, reason: str, now: float, lease: Lease,
                          events: Iterable[LifecycleEvent] = ()) -> bool: ...
    def merge_profiles(self, advertiser_id: str, found: dict[Region, list[Profile]], now: float) -> None: ...
    def add_event(self, advertiser_id: str, event: str, cause: str, now: float) -> None: ...
    def list_events(self, advertiser_id: str, limit: int = 20) -> list[TokenEvent]: ...
    def platform_paused_until(self, now: float) -> float | None: ...
    def pause_platform(self, reason: str, now: float, until: float) -> bool:
        """Pause refreshes until ``until``; True when this call started the pause."""
    # --- packs (``adsauth.packs``) -----------------------------------------------------------------
    def acquire_pack_lease(self, pack_id: str, owner: str, now: float, until: float) -> bool:
        """Take pack ``pack_id``'s lease (creating its item when absent) unless another owner
        holds an unexpired one."""
    def release_pack_lease(self, pack_id: str, owner: str) -> None: ...
    def record_pack(self, pack_id: str, owner: str, *, members: int, size: int, now: float) -> bool:
        """The pack's member count and value size after a write, while ``owner`` holds its
        lease; a pack left without members loses its item."""
    def list_packs(self) -> list[PackInfo]:
        """Every pack (an index query, never a scan)."""
    def pack_pointers(self, advertiser_ids: Sequence[str]) -> dict[str, tuple[AdvertiserStatus, str]]:
        """Status and ``pack`` of each of these advertisers that exists."""
    def lobby(self) -> list[str]:
        """Advertisers of their own secrets waiting to join a pack (one item, ``PACK#lobby``)."""
    def enter_lobby(self, advertiser_id: str) -> None: ...
    def leave_lobby(self, advertiser_ids: Sequence[str]) -> None: ...
    def set_pack(self, advertiser_id: str, pack: str, lease: Lease) -> bool:
        """Point the advertiser at ``pack`` ("" = its own secrets) without a refresh, while
        ``lease`` is held on the same grant and it is connected."""


class TokenVault(Protocol):
    def put_grant(self, advertiser_id: str, tokens: TokenSet, issued_at: float) -> GrantReceipt:
        """A new grant: the only write that creates an advertiser's secrets."""
    def undo_grant(self, advertiser_id: str, receipt: GrantReceipt, *, revoked: bool) -> None: ...
    def put_access_token(self, advertiser_id: str, access_token: str, expires_at: float) -> None:
        """Update an existing access-token secret; ``TokensDeleted`` when it is gone."""
    def delete_tokens(self, advertiser_id: str) -> None: ...


class RefreshVault(TokenVault, Protocol):
    def get_refresh_token(self, advertiser_id: str) -> StoredRefreshToken: ...
    def replace_refresh_token(
        self, advertiser_id: str, refresh_token: str, issued_at: float, *, replaces: str, fence: int
    ) -> None:
        """Store ``refresh_token`` as the successor of version ``replaces``; raises
        ``RefreshTokenSuperseded`` when that version already has a successor."""
    def delete_tokens(self, advertiser_id: str) -> None: ...
    def read_pack(self, kind: str, pack_id: str) -> PackValue:
        """Pack secret ``kind`` ("refresh" or "access"); ``PackValue(None)`` when it does not exist."""
    def write_pack(self, kind: str, pack_id: str, base: PackValue,
                   changes: Mapping[str, dict | None]) -> tuple[PackValue, set[str]]:
        """Write ``changes`` (advertiser → entry, None: remove) made against ``base``, merged
        (``packs.merge``) with whatever was written since; returns the value written and the
        advertisers whose change was dropped. ``PackTooLarge`` when the value would not fit."""
    def delete_pack(self, pack_id: str) -> None: ...
    def get_access_token(self, advertiser_id: str) -> tuple[str, float]:
        """The advertiser's own access token and its expiry (a move without a refresh)."""


class LwaClient(Protocol):
    def exchange_code(
        self, region: Region, code: str, redirect_uri: str, code_verifier: str | None
    ) -> TokenSet: ...


class LwaRefresher(Protocol):
    def refresh(self, region: Region, refresh_token: str) -> TokenSet: ...


class RefreshQueue(Protocol):
    def send(self, advertiser_ids: Sequence[str]) -> None:
        """Queue one refresh job per advertiser (the adapter sends batches of 10)."""
    def send_packs(self, jobs: Sequence[PackJob]) -> None:
        """Queue one refresh job per pack (``PackJob.body``)."""


class Mailer(Protocol):
    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None: ...


class Notifier(Protocol):
    def alert(self, subject: str, message: str) -> None: ...


class ProfilesClient(Protocol):
    def list_profiles(self, region: Region, access_token: str) -> list[Profile]: ...
