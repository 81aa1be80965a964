"""In-memory stand-ins of the table, the vault and EventBridge, following the same rules as the
real adapters: every lifecycle transition is conditional on the same things (generation, claim,
status, lease) and changes nothing when its condition fails; each refresh-token version has at
most one successor; events go to an outbox in the same step as their change. The unit tests and
the simulations (``local.simulation``) run the domain on them."""

from __future__ import annotations

import dataclasses
import itertools
import threading

from adsauth import packs as packing
from adsauth.errors import (
    InvitationBusy,
    PackTooLarge,
    InvitationReplaced,
    InvitationUnknown,
    InvitationUsed,
    RefreshTokenMissing,
    RefreshTokenSuperseded,
    StateReplayed,
    TokensDeleted,
    TooManyAttempts,
    TransitionRefused,
)
from adsauth import events as lifecycle_events
from adsauth.lifecycle import REFUSED, grant_end
from adsauth.models import (
    ATTEMPT_STATUSES,
    AdvertiserStatus,
    DueAdvertiser,
    DueSchedule,
    GrantReceipt,
    Lease,
    StoredRefreshToken,
    TokenEvent,
)
from local.due_index import DueIndex

CONNECTED = AdvertiserStatus.CONNECTED


def replace(record, **changes):
    """``dataclasses.replace`` without running ``__init__`` again: the records are frozen
    dataclasses whose ``__init__`` only assigns, and the simulations replace an advertiser's item
    on every refresh (at 100,000 advertisers, millions of times). Anything else, and any unknown
    field, goes to ``dataclasses.replace`` (which says what is wrong)."""
    fields = getattr(record, "__dataclass_fields__", None)
    if fields is None or hasattr(record, "__post_init__") or not hasattr(record, "__dict__") \
            or not changes.keys() <= fields.keys():
        return dataclasses.replace(record, **changes)
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    new.__dict__.update(changes)
    return new


class MemoryStore:
    """The whole table: advertisers, invitations, states, profiles, the sparse due index, leases,
    the audit trail, the platform pause and the events outbox."""

    def __init__(self, schedule: DueSchedule | None = None, *, events_enabled: bool = True) -> None:
        self.schedule = schedule or DueSchedule()
        self.events_enabled = events_enabled
        self.advertisers: dict = {}
        self.invitations: dict = {}
        self.states: dict = {}
        self.consumed: set[str] = set()
        self.profiles: dict[str, dict[tuple, object]] = {}
        self.due: dict[str, float] = DueIndex()  # the sparse byExpiry index: connected advertisers only
        self._due_rows: dict[str, tuple] = {}  # advertiser -> (deadline, item, DueAdvertiser) last answered
        self.leases: dict[str, tuple[str, float]] = {}
        self.fences: dict[str, int] = {}
        self.events: list[TokenEvent] = []
        self.outbox: dict[str, object] = {}
        self.last_flow: dict[str, float] = {}
        self.grants: dict[str, str] = {}  # imported refresh tokens, by hash
        self.paused: tuple[str, float] | None = None
        self.dispatch_lease: tuple[str, float] | None = None  # (owner, until): PLATFORM#dispatch / LEASE
        self.packs: dict[str, dict] = {}  # PACK#<id>: members, size, lease (owner, until)
        self.lobby_ids: set[str] = set()  # PACK#lobby
        self.due_queries = 0
        self.writes = 0
        self.lock = threading.RLock()

    # --- reads -----------------------------------------------------------------------------------
    def get_advertiser(self, advertiser_id):
        return self.advertisers.get(advertiser_id)

    def list_advertisers(self):
        return [self.advertisers[k] for k in sorted(self.advertisers)]

    def get_invitation(self, token_hash):
        return self.invitations.get(token_hash)

    def get_state(self, state_hash):
        return self.states.get(state_hash)

    def list_profiles(self, advertiser_id):
        return list(self.profiles.get(advertiser_id, {}).values())

    def _emit(self, events):
        if self.events_enabled:
            for e in events:
                self.outbox[e.event_id] = e

    def _write(self, advertiser_id, **changes):
        self.advertisers[advertiser_id] = replace(self.advertisers[advertiser_id], **changes)
        self.writes += 1

    # --- invite / import / reinvite / reconsent / cancel / revoke --------------------------------
    def imported_grant(self, grant_key):
        return self.grants.get(grant_key)

    def create_advertiser(self, advertiser, invitation, events, *, grant_key=None):
        with self.lock:
            if advertiser.advertiser_id in self.advertisers or (grant_key is not None and grant_key in self.grants):
                raise TransitionRefused(REFUSED["exists"])
            if grant_key is not None:
                self.grants[grant_key] = advertiser.advertiser_id
            self.advertisers[advertiser.advertiser_id] = advertiser
            if invitation is not None:
                self.invitations[invitation.token_hash] = invitation
            if advertiser.status is CONNECTED and advertiser.token_expires_at is not None:
                self.due[advertiser.advertiser_id] = self.schedule.deadline(
                    advertiser.token_expires_at, advertiser.profiles_at, advertiser.pending_regions,
                    grant_end(advertiser.grant_expires_at, advertiser.grant_expiry_basis))
            self._emit(events)
            self.writes += 1

    def issue_invitation(self, advertiser, invitation, *, now, events, reconsent_leads=(), quiet_since=None):
        with self.lock:
            current = self.advertisers.get(advertiser.advertiser_id)
            if current is None or current.generation != advertiser.generation:
                return False
            # the branch taken from the status read must still hold (as the DynamoDB condition says)
            kind = lambda status: status if status in (CONNECTED, AdvertiserStatus.CANCELLED) else None  # noqa: E731
            if kind(current.status) != kind(advertiser.status):
                return False
            changes = dict(generation=invitation.generation, invitation_hash=invitation.token_hash,
                           invitation_expires_at=invitation.expires_at, invitation_purpose=invitation.purpose,
                           updated_at=now)
            if reconsent_leads:
                if current.status is not CONNECTED:
                    return False
                open_one = self.invitations.get(current.invitation_hash)
                if open_one is not None and open_one.claimed_by and (open_one.claim_until or 0) >= now:
                    return False  # the advertiser is completing the current link right now
                if (open_one is not None and quiet_since is not None
                        and (self.last_flow.get(open_one.token_hash) or 0) >= quiet_since):
                    return False  # ... or is at Amazon with it
                changes.update(reconsent_pending=True, reconsent_leads_sent=tuple(
                    sorted({*current.reconsent_leads_sent, *reconsent_leads}, reverse=True)))
            elif current.status is CONNECTED:
                changes.update(reconsent_pending=True)
            elif current.status is AdvertiserStatus.CANCELLED:
                changes.update(status=AdvertiserStatus.INVITED, status_reason="")
            self._write(advertiser.advertiser_id, **changes)
            self.invitations[invitation.token_hash] = invitation
            self._emit(events)
            return True

    def cancel_invitation(self, advertiser, *, now, events):
        with self.lock:
            current = self.advertisers.get(advertiser.advertiser_id)
            if (current is None or current.generation != advertiser.generation or not current.invitation_hash
                    or current.invitation_hash != advertiser.invitation_hash
                    or (current.status in ATTEMPT_STATUSES) != (advertiser.status in ATTEMPT_STATUSES)):
                return False
            changes = dict(generation=current.generation + 1, updated_at=now, reconsent_pending=False,
                           invitation_hash="", invitation_expires_at=None, invitation_purpose="")
            if current.status in ATTEMPT_STATUSES:
                changes.update(status=AdvertiserStatus.CANCELLED, status_reason="operator")
            self._write(advertiser.advertiser_id, **changes)
            self._emit(events)
            return True

    def revoke_advertiser(self, advertiser, *, cause, now, events):
        with self.lock:
            current = self.advertisers.get(advertiser.advertiser_id)
            if current is None or current.generation != advertiser.generation:
                return False
            self._write(advertiser.advertiser_id, status=AdvertiserStatus.REVOKED, status_reason=cause,
                        generation=current.generation + 1, updated_at=now, reconsent_pending=False,
                        invitation_hash="", invitation_expires_at=None, invitation_purpose="")
            self.due.pop(advertiser.advertiser_id, None)
            self._emit(events)
            return True

    # --- flows -----------------------------------------------------------------------------------
    def _generation_ok(self, advertiser_id, generation):
        adv = self.advertisers.get(advertiser_id)
        return adv is not None and adv.generation == generation

    def open_flow(self, pending, *, state_expires_at, now, max_flows, window_seconds):
        with self.lock:
            inv = self.invitations.get(pending.invitation_hash)
            if inv is None:
                raise InvitationUnknown()
            if not self._generation_ok(pending.advertiser_id, pending.generation):
                raise InvitationReplaced()
            if inv.completed_at is not None:
                raise InvitationUsed()
            window = int(now // window_seconds)
            flows = inv.flows + 1 if inv.flow_window == window else 1
            if flows > max_flows:
                raise TooManyAttempts()
            self.invitations[inv.token_hash] = replace(inv, flow_window=window, flows=flows)
            self.last_flow[inv.token_hash] = now
            self.states[pending.state_hash] = pending
            self.writes += 1

    def consume_state(self, pending, now):
        with self.lock:
            if pending.state_hash not in self.states or pending.state_hash in self.consumed:
                raise StateReplayed()
            if not self._generation_ok(pending.advertiser_id, pending.generation):
                raise InvitationReplaced()
            self.consumed.add(pending.state_hash)

    def claim_invitation(self, pending, *, now, claim_seconds, max_calls, window_seconds):
        with self.lock:
            if pending.state_hash not in self.states or pending.state_hash in self.consumed:
                raise StateReplayed()
            if not self._generation_ok(pending.advertiser_id, pending.generation):
                raise InvitationReplaced()
            inv = self.invitations.get(pending.invitation_hash)
            if inv is None:
                raise InvitationUnknown()
            if inv.completed_at is not None:
                raise InvitationUsed()
            if inv.claimed_by and (inv.claim_until or 0) >= now:
                raise InvitationBusy()
            window = int(now // window_seconds)
            calls = inv.calls + 1 if inv.call_window == window else 1
            if calls > max_calls:
                raise TooManyAttempts()
            self.invitations[inv.token_hash] = replace(inv, claimed_by=pending.state_hash, claim_until=now + claim_seconds,
                                                       call_window=window, calls=calls)
            self.consumed.add(pending.state_hash)

    def release_invitation(self, invitation_hash, state_hash):
        with self.lock:
            inv = self.invitations.get(invitation_hash)
            if inv is None or inv.claimed_by != state_hash:
                return False
            self.invitations[invitation_hash] = replace(inv, claimed_by=None, claim_until=None)
            return True

    def set_attempt_outcome(self, advertiser_id, *, generation, status, reason, now, events=()):
        with self.lock:
            adv = self.advertisers.get(advertiser_id)
            if adv is None or adv.generation != generation or adv.status not in ATTEMPT_STATUSES:
                return False
            self._write(advertiser_id, status=status, status_reason=reason, updated_at=now)
            self._emit(events)
            return True

    def complete_connection(self, *, advertiser_id, generation, invitation_hash, state_hash, grant, token_expires_at,
                            pending_regions, now, events):
        with self.lock:
            adv = self.advertisers.get(advertiser_id)
            if adv is None or adv.generation != generation:
                return False
            if invitation_hash:
                inv = self.invitations.get(invitation_hash)
                if inv is None or inv.completed_at is not None or inv.claimed_by != state_hash:
                    return False
                self.invitations[invitation_hash] = replace(inv, completed_at=now, claimed_by=None, claim_until=None)
            pending = tuple(pending_regions)
            changes = dict(status=CONNECTED, status_reason="", updated_at=now, connected_at=now,
                           token_expires_at=token_expires_at, pending_regions=pending, profiles_at=now,
                           last_refresh_error="", consented_at=grant.consented_at, grant_expires_at=grant.expires_at,
                           grant_expiry_basis=grant.basis, reconsent_pending=False, reconsent_leads_sent=(),
                           pack="")  # a new grant is in its own secrets
            if invitation_hash:
                changes.update(invitation_hash="", invitation_expires_at=None, invitation_purpose="")
            self._write(advertiser_id, **changes)
            self.due[advertiser_id] = self.schedule.deadline(token_expires_at, now, pending,
                                                             grant_end(grant.expires_at, grant.basis))
            self._emit(events)
            return True

    def merge_profiles(self, advertiser_id, found, now):
        with self.lock:
            stored = self.profiles.setdefault(advertiser_id, {})
            added, removed = [], []
            for region, items in found.items():
                seen = {p.profile_id for p in items}
                for p in items:
                    old = stored.get((region, p.profile_id))
                    if old is None or old.status == "removed":
                        added.append((region.value, p.profile_id))
                    stored[(region, p.profile_id)] = replace(p, status="active", removed_at=None)
                for (known_region, pid), old in list(stored.items()):
                    if known_region == region and pid not in seen and old.status != "removed":
                        removed.append((region.value, pid))
                        stored[(known_region, pid)] = replace(old, status="removed", removed_at=now)
            if added or removed:
                self._emit([lifecycle_events.profiles_changed(advertiser_id, added=added, removed=removed, now=now)])
            return added, removed

    # --- the refresher ---------------------------------------------------------------------------
    def due_advertisers(self, before):
        """In advertiser order. An answer row is made again only when its deadline or its item changed."""
        with self.lock:
            self.due_queries += 1
            found = self.due.before(before) if isinstance(self.due, DueIndex) else \
                [(a, d) for a, d in self.due.items() if d < before]
            found.sort()
            rows, made, items = [], self._due_rows, self.advertisers
            for a, d in found:
                adv = items.get(a)
                row = made.get(a)
                if row is None or row[0] != d or row[1] is not adv:
                    row = made[a] = (d, adv, DueAdvertiser(a, repr(d), adv.token_expires_at if adv else None,
                                                           pack=adv.pack if adv else "", due_at=d))
                rows.append(row[2])
            return rows

    def snooze(self, due, until):
        with self.lock:
            if due.advertiser_id not in self.due or repr(self.due[due.advertiser_id]) != due.due_sk:
                return False
            self.due[due.advertiser_id] = until
            return True

    def set_deadline(self, advertiser_id, due_at):
        with self.lock:
            if self.advertisers[advertiser_id].status is CONNECTED:
                self.due[advertiser_id] = due_at

    def acquire_dispatch_lease(self, owner, now, until):
        with self.lock:  # attribute_not_exists(pk) OR lease_until <= :now OR lease_owner = :owner
            if self.dispatch_lease is not None and self.dispatch_lease[1] > now and self.dispatch_lease[0] != owner:
                return False
            self.dispatch_lease = (owner, until)
            self.writes += 1
            return True

    def release_dispatch_lease(self, owner):
        with self.lock:  # lease_owner = :owner
            if self.dispatch_lease is None or self.dispatch_lease[0] != owner:
                return False
            self.dispatch_lease = None
            self.writes += 1
            return True

    def acquire_lease(self, advertiser_id, owner, now, until):
        with self.lock:
            held = self.leases.get(advertiser_id)
            if advertiser_id not in self.advertisers or (held and held[1] >= now):
                return None
            self.leases[advertiser_id] = (owner, until)
            self.fences[advertiser_id] = self.fences.get(advertiser_id, 0) + 1
            adv = self.advertisers[advertiser_id]
            return Lease(advertiser_id, owner, self.fences[advertiser_id], until, adv.connected_at), adv

    def _holds(self, lease):
        held = self.leases.get(lease.advertiser_id)
        return bool(held) and held[0] == lease.owner and self.fences.get(lease.advertiser_id) == lease.fence

    def _holds_grant(self, lease):  # and the grant is still the one the lease was taken on
        return self._holds(lease) and self.advertisers[lease.advertiser_id].connected_at == lease.grant_at

    def hold_lease(self, lease, now, until):
        with self.lock:
            if not self._holds_grant(lease) or self.advertisers[lease.advertiser_id].status is not CONNECTED:
                return None
            self.leases[lease.advertiser_id] = (lease.owner, until)
            return replace(lease, until=until)

    def release_lease(self, lease):
        with self.lock:
            if self._holds(lease):
                del self.leases[lease.advertiser_id]

    def record_refresh(self, advertiser_id, *, lease, token_expires_at, due_at, now, profiles_at=None, pending_regions=None,
                       pack=None):
        with self.lock:
            adv = self.advertisers[advertiser_id]
            if not self._holds_grant(lease) or adv.status is not CONNECTED:
                return False
            changes = dict(token_expires_at=token_expires_at, last_refresh_at=now, updated_at=now, last_refresh_error="")
            if pack is not None:
                changes.update(pack=pack)
            if profiles_at is not None:
                changes.update(profiles_at=profiles_at, pending_regions=tuple(pending_regions or ()))
            self.advertisers[advertiser_id] = replace(adv, **changes)
            self.due[advertiser_id] = due_at
            return True

    def note_reconsent_leads(self, advertiser, leads, lease, events=()):
        with self.lock:
            adv = self.advertisers[advertiser.advertiser_id]
            if not self._holds(lease) or adv.status is not CONNECTED or adv.generation != advertiser.generation:
                return False
            self.advertisers[adv.advertiser_id] = replace(adv, reconsent_leads_sent=tuple(
                sorted({*adv.reconsent_leads_sent, *leads}, reverse=True)))
            self._emit(events)
            return True

    def record_grant(self, advertiser_id, grant, lease):
        with self.lock:
            adv = self.advertisers[advertiser_id]
            if not self._holds_grant(lease) or adv.grant_expiry_basis:
                return False
            self.advertisers[advertiser_id] = replace(adv, consented_at=grant.consented_at, grant_expires_at=grant.expires_at,
                                                      grant_expiry_basis=grant.basis)
            return True

    def record_refresh_error(self, advertiser_id, reason, now):
        with self.lock:
            self.advertisers[advertiser_id] = replace(self.advertisers[advertiser_id], last_refresh_error=reason)

    def mark_needs_reauth(self, advertiser_id, reason, now, lease, events=()):
        with self.lock:
            if not self._holds_grant(lease) or self.advertisers[advertiser_id].status is not CONNECTED:
                return False
            self._write(advertiser_id, status=AdvertiserStatus.NEEDS_REAUTH, status_reason=reason, updated_at=now,
                        reconsent_pending=False)
            self.due.pop(advertiser_id, None)
            self._emit(events)
            return True

    def add_event(self, advertiser_id, event, cause, now):
        with self.lock:
            self.events.append(TokenEvent(advertiser_id, now, event, cause))

    def list_events(self, advertiser_id, limit=20):
        return [e for e in reversed(self.events) if e.advertiser_id == advertiser_id][:limit]

    def platform_paused_until(self, now):
        return self.paused[1] if self.paused and self.paused[1] > now else None

    def pause_platform(self, reason, now, until):
        with self.lock:
            if self.platform_paused_until(now) is not None:
                return False
            self.paused = (reason, until)
            return True

    # --- packs -----------------------------------------------------------------------------------
    def acquire_pack_lease(self, pack_id, owner, now, until):
        with self.lock:
            held = self.packs.get(pack_id, {}).get("lease")
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self.packs.setdefault(pack_id, {"members": 0, "size": 0})["lease"] = (owner, until)
            self.writes += 1
            return True

    def release_pack_lease(self, pack_id, owner):
        with self.lock:
            pack = self.packs.get(pack_id)
            if pack is not None and (pack.get("lease") or ("",))[0] == owner:
                pack["lease"] = None
                if not pack["members"]:
                    del self.packs[pack_id]

    def record_pack(self, pack_id, owner, *, members, size, now):
        with self.lock:
            pack = self.packs.get(pack_id)
            if pack is None or (pack.get("lease") or ("",))[0] != owner:
                return False
            pack.update(members=members, size=size, written_at=now)
            self.writes += 1
            return True

    def list_packs(self):
        with self.lock:
            return [packing.PackInfo(k, v["members"], v["size"]) for k, v in sorted(self.packs.items()) if v["members"]]

    def pack_pointers(self, advertiser_ids):
        with self.lock:
            return {a: (self.advertisers[a].status, self.advertisers[a].pack) for a in advertiser_ids
                    if a in self.advertisers}

    def lobby(self):
        with self.lock:
            return sorted(self.lobby_ids)

    def enter_lobby(self, advertiser_id):
        with self.lock:
            if len(self.lobby_ids) < packing.LOBBY_LIMIT:
                self.lobby_ids.add(advertiser_id)
                self.writes += 1

    def leave_lobby(self, advertiser_ids):
        with self.lock:
            self.lobby_ids.difference_update(advertiser_ids)
            self.writes += 1

    def set_pack(self, advertiser_id, pack, lease):
        with self.lock:
            if not self._holds_grant(lease) or self.advertisers[advertiser_id].status is not CONNECTED:
                return False
            self.advertisers[advertiser_id] = replace(self.advertisers[advertiser_id], pack=pack)
            self.writes += 1
            return True

    # --- outbox ----------------------------------------------------------------------------------
    def pending_events(self, limit=100):
        with self.lock:
            return sorted(self.outbox.values(), key=lambda e: e.at)[:limit]

    def forget_events(self, event_ids):
        with self.lock:
            for event_id in event_ids:
                self.outbox.pop(event_id, None)


class MemoryPublisher:
    """EventBridge: what was published, in order (duplicates kept: delivery is at least once)."""

    def __init__(self) -> None:
        self.published: list = []
        self.fail = False

    def publish(self, events):
        if self.fail:
            raise ConnectionError("EventBridge unavailable")
        self.published.extend(events)
        return [e.event_id for e in events]

    def types(self, advertiser_id=None):
        return [e.detail_type for e in self.published if advertiser_id is None or e.advertiser_id == advertiser_id]


class MemoryMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to, subject, text, html=None):
        self.sent.append((to, subject, text))  # the plain-text part: what the simulations read


class MemoryVault:
    """Refresh and access tokens; each refresh-token version can be replaced once. Only
    ``put_grant`` creates an advertiser's tokens."""

    def __init__(self, clock=None) -> None:
        self.clock = clock
        self.secret_writes: list[tuple[str, float]] = []  # (secret name, when): for the write-rate figures
        self.packs: dict[tuple[str, str], packing.PackValue] = {}  # (kind, pack id) -> value
        self.refresh: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.access: dict[str, tuple[str, float]] = {}
        self.order: list[str] = []
        self._history: dict[str, str] = {}  # version -> value
        self._access_history: dict[str, tuple[str, float]] = {}
        self._access_version: dict[str, str] = {}
        self._replaced: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def get_refresh_token(self, advertiser_id):
        with self._lock:
            if advertiser_id not in self.refresh:
                raise RefreshTokenMissing()
            return StoredRefreshToken(self.refresh[advertiser_id], self.versions[advertiser_id])

    def _store(self, advertiser_id, token):
        if advertiser_id in self.versions:
            self._replaced.add(self.versions[advertiser_id])
        version = f"v{next(self._ids)}"
        self.refresh[advertiser_id], self.versions[advertiser_id] = token, version
        self._history[version] = token
        self.order.append("refresh")
        self._wrote(f"refresh/{advertiser_id}")
        return version

    def _put_access(self, advertiser_id, access_token, expires_at):
        version = f"a{next(self._ids)}"
        self.access[advertiser_id] = (access_token, expires_at)
        self._access_version[advertiser_id] = version
        self._access_history[version] = (access_token, expires_at)
        self.order.append("access")
        self._wrote(f"access/{advertiser_id}")

    def _wrote(self, name):
        self.secret_writes.append((name, self.clock() if self.clock else 0.0))

    def put_grant(self, advertiser_id, tokens, issued_at):
        with self._lock:
            previous = self.versions.get(advertiser_id)
            previous_access = self._access_version.get(advertiser_id)
            new = self._store(advertiser_id, tokens.refresh_token)
            receipt = GrantReceipt(previous, new, previous_access)
        try:
            self._put_access_checked(advertiser_id, tokens.access_token, tokens.expires_at)
        except Exception:
            self.undo_grant(advertiser_id, receipt, revoked=False)
            raise
        return replace(receipt, new_access_version=self._access_version[advertiser_id])

    def _put_access_checked(self, advertiser_id, access_token, expires_at):
        with self._lock:
            self._put_access(advertiser_id, access_token, expires_at)

    def undo_grant(self, advertiser_id, receipt, *, revoked):
        if revoked:
            self.delete_tokens(advertiser_id)
            return
        with self._lock:
            if receipt.new_refresh_version is not None and self.versions.get(advertiser_id) == receipt.new_refresh_version:
                if receipt.previous_refresh_version is None:
                    self.refresh.pop(advertiser_id, None)
                    self.versions.pop(advertiser_id, None)
                else:
                    self._store(advertiser_id, self._history[receipt.previous_refresh_version])
            if receipt.new_access_version is not None and self._access_version.get(advertiser_id) == receipt.new_access_version:
                if receipt.previous_access_version is None:
                    self.access.pop(advertiser_id, None)
                    self._access_version.pop(advertiser_id, None)
                else:
                    self._put_access(advertiser_id, *self._access_history[receipt.previous_access_version])

    def replace_refresh_token(self, advertiser_id, refresh_token, issued_at, *, replaces, fence):
        with self._lock:
            if replaces in self._replaced or advertiser_id not in self.refresh:
                raise RefreshTokenSuperseded()
            self._store(advertiser_id, refresh_token)

    def put_access_token(self, advertiser_id, access_token, expires_at):
        with self._lock:
            if advertiser_id not in self.access:
                raise TokensDeleted()  # the refresher never creates a secret
            self._put_access(advertiser_id, access_token, expires_at)

    # --- packs -----------------------------------------------------------------------------------
    def read_pack(self, kind, pack_id):
        with self._lock:
            value = self.packs.get((kind, pack_id))
            return packing.PackValue(None, {}) if value is None else packing.PackValue(value.version, dict(value.entries))

    def write_pack(self, kind, pack_id, base, changes):
        """The Secrets Manager adapter's loop in one step: merged with what was written since ``base``."""
        with self._lock:
            current = self.packs.get((kind, pack_id)) or packing.PackValue(None, {})
            merged, dropped = packing.merge(base.entries, current.entries, changes)
            if len(packing.encode(merged)) > packing.VALUE_LIMIT:
                raise PackTooLarge()
            written = packing.PackValue(f"p{next(self._ids)}", merged)
            self.packs[(kind, pack_id)] = written
            self.order.append(f"pack-{kind}")
            self._wrote(f"{kind}/packs/{pack_id}")
            return packing.PackValue(written.version, dict(merged)), dropped

    def delete_pack(self, pack_id):
        with self._lock:
            for kind in ("refresh", "access"):
                self.packs.pop((kind, pack_id), None)

    def get_access_token(self, advertiser_id):
        with self._lock:
            if advertiser_id not in self.access:
                raise TokensDeleted()
            return self.access[advertiser_id]

    def read_access(self, advertiser_id, pack=""):
        """What downstream reads (``adsauth.client``): the pack's entry, else its own secret."""
        with self._lock:
            value = self.packs.get(("access", pack)) if pack else None
            entry = value.entries.get(advertiser_id) if value is not None else None
            if entry is not None:
                return entry["a"], float(entry["e"])
            return self.access.get(advertiser_id)

    def delete_tokens(self, advertiser_id):
        with self._lock:
            self.refresh.pop(advertiser_id, None)
            self.versions.pop(advertiser_id, None)
            self.access.pop(advertiser_id, None)
            self._access_version.pop(advertiser_id, None)
