"""A pack's refresh job (``Refresher.refresh_pack``; the layout and its rules: ``adsauth.packs``).

Under the pack's lease (one table item, so one job per pack at a time):

1. read both pack secrets and, in one batch read, where every advertiser named there or in the
   job keeps its tokens now (``pack_pointers``);
2. per advertiser, as a refresh of its own (``Refresher._begin``: its lease, grant expiry,
   re-consent; ``_obtain``: LwA): members due within ``packs.ALIGN_SECONDS`` and the joiners. A
   rotated refresh token is written to the pack at once (a member's) or to its own secret (a
   joiner's), before anything else, as always;
3. members that move out (per-advertiser layout, or a value that outgrew the secret) get their
   own two secrets first (``put_grant``);
4. one write of the access secret (and of the refresh secret when someone joined, left or was
   found gone), merged with whatever was written meanwhile (``packs.merge``);
5. per advertiser, the table: new expiry and deadline, and its pointer (``pack``) in the same
   conditional write; a joiner whose write is refused (revoked, re-consented meanwhile) has its
   entries taken out again at once, a leaver's own secrets are taken back;
6. joiners' own secrets are deleted; the pack item gets its member count and size.

A job that dies anywhere loses nothing: until step 5 every advertiser is still due where it
was, and its tokens are where its pointer says (an entry is written before a pointer names it
and removed only after the pointer moved away). Entries of advertisers that moved away are
removed by the pack's next job.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from adsauth import packs
from adsauth.errors import (LwaError, PackTooLarge, RefreshTokenMissing, RefreshTokenSuperseded, RefreshTokenUnsaved,
                            TokensDeleted)
from adsauth.models import AdvertiserStatus, GrantReceipt, RefreshResult, StoredRefreshToken, TokenSet

if TYPE_CHECKING:
    from adsauth.refresher import Held, Refresher

CONNECTED = AdvertiserStatus.CONNECTED
SERVING = (AdvertiserStatus.CONNECTED, AdvertiserStatus.NEEDS_REAUTH)
REMOVE_ATTEMPTS = 5  # a revoked advertiser's entry is rewritten at most once per job in flight


def _sequential(f, items):
    return [f(item) for item in items]


def remove_from_pack(vault, pack_id: str, advertiser_id: str) -> None:
    """Take an advertiser's entries out of both pack secrets (a revoke): the refresh token first.
    The removal wins: when a job rewrote the entry after we read it (our change is dropped by the
    merge), read it again and remove that one."""
    for kind in ("refresh", "access"):
        for _ in range(REMOVE_ATTEMPTS):
            value = vault.read_pack(kind, pack_id)
            if advertiser_id not in value.entries:
                break
            _, dropped = vault.write_pack(kind, pack_id, value, {advertiser_id: None})
            if advertiser_id not in dropped:
                break


@dataclass
class Got:
    """An advertiser refreshed in a pack job, its new tokens not stored yet."""

    held: Held
    joiner: bool
    tokens: TokenSet
    rotated: bool
    refresh_token: str  # the grant's refresh token now (rotated or as stored)

    @property
    def advertiser_id(self) -> str:
        return self.held.advertiser.advertiser_id


def run_pack_job(refresher: Refresher, job: packs.PackJob, *, force_token: bool, force_profiles: bool,
                 run_all: Callable | None = None, deadline=None) -> list[RefreshResult]:
    now = refresher.clock()
    if refresher.store.platform_paused_until(now) is not None:
        return [RefreshResult(a, "paused", reason="invalid_client") for a in job.advertisers()]
    owner, until = uuid.uuid4().hex, now + packs.PACK_LEASE_SECONDS
    if not refresher.store.acquire_pack_lease(job.pack_id, owner, now, until):
        return [RefreshResult(a, "busy") for a in job.advertisers()]  # the holder does the work
    try:
        run = PackRun(refresher, job, owner, until, force_token, force_profiles)
        run.deadline = deadline
        return run.run(run_all or _sequential)
    finally:
        refresher.store.release_pack_lease(job.pack_id, owner)


class PackRun:
    def __init__(self, refresher: Refresher, job: packs.PackJob, owner: str, until: float,
                 force_token: bool, force_profiles: bool) -> None:
        self.r, self.job, self.owner, self.until = refresher, job, owner, until
        self.force_token, self.force_profiles = force_token, force_profiles
        self.pack_id = job.pack_id
        self.packed = refresher.settings.token_layout == "packed"
        self._lock = threading.Lock()
        self.refresh = self.access = packs.PackValue(None, {})
        self.deadline = None  # adsauth.deadline.Deadline: no refresh is started past it
        self.spilled: set[str] = set()  # members moved to their own secrets by a rotation (``_spill``)

    # --- 1. what is where ------------------------------------------------------------------------
    def run(self, run_all) -> list[RefreshResult]:
        r, pack_id = self.r, self.pack_id
        self.refresh = r.vault.read_pack("refresh", pack_id)
        self.access = r.vault.read_pack("access", pack_id)
        named = set(self.refresh.entries) | set(self.access.entries) | set(self.job.advertisers())
        pointers = r.store.pack_pointers(sorted(named))
        results: dict[str, RefreshResult] = {}
        members = [a for a in self.job.members if pointers.get(a) == (CONNECTED, pack_id)]
        joiners = [a for a in self.job.joiners if pointers.get(a) == (CONNECTED, "")]
        for a in self.job.advertisers():
            if a not in members and a not in joiners:
                status = pointers.get(a, (None, ""))[0]
                results[a] = RefreshResult(a, "not_connected", reason=status.value) if status not in (None, CONNECTED) \
                    else RefreshResult(a, "superseded", reason="moved")  # re-consented, or moved meanwhile
        alone = [] if self.packed else joiners  # the layout changed since the dispatch: refreshed alone
        joiners = joiners if self.packed else []
        now = r.clock()
        stale_refresh = {a: None for a in self.refresh.entries if pointers.get(a) != (CONNECTED, pack_id)}
        stale_access = {a: None for a, e in self.access.entries.items()
                        if not (pointers.get(a, (None, ""))[1] == pack_id and pointers[a][0] in SERVING)
                        or (pointers[a][0] is not CONNECTED and _expires(e) <= now)}

        # --- 2. refresh, per advertiser ----------------------------------------------------------
        outcomes = run_all(self._obtain, [(a, False) for a in members] + [(a, True) for a in joiners])
        got: list[Got] = []
        for outcome in outcomes:
            if isinstance(outcome, Got):
                got.append(outcome)
            else:
                results[outcome.advertiser_id] = outcome
        spilled = [g for g in got if g.advertiser_id in self.spilled]  # in their own secrets already
        got = [g for g in got if g.advertiser_id not in self.spilled]
        try:
            stay = got if self.packed else [g for g in got if g.joiner]
            leave = [] if self.packed else [g for g in got if not g.joiner]
            stay, leave, own = self._fit(stay, leave, stale_refresh, stale_access)
            # --- 3. those moving out: their own secrets first ----------------------------------
            receipts: dict[str, GrantReceipt] = {}
            for g in leave:
                receipts[g.advertiser_id] = r.vault.put_grant(
                    g.advertiser_id, TokenSet(g.tokens.access_token, g.refresh_token, g.tokens.expires_at), now)
            for g in list(own):  # joiners that did not fit: refreshed in their own secrets
                if not self._own_access(g, results):
                    own.remove(g)
            # --- 4. one write per pack secret ---------------------------------------------------
            refresh_changes = dict(stale_refresh)
            refresh_changes.update({g.advertiser_id: packs.refresh_entry(g.refresh_token, now, g.held.lease.fence)
                                    for g in stay if g.joiner})
            access_changes = dict(stale_access)
            access_changes.update({g.advertiser_id: packs.access_entry(g.tokens.access_token, g.tokens.expires_at)
                                   for g in stay})
            if refresh_changes:
                self.refresh, dropped = r.vault.write_pack("refresh", pack_id, self.refresh, refresh_changes)
                for g in [g for g in stay if g.joiner and g.advertiser_id in dropped]:
                    # its entry was changed meanwhile: it stays in its own secrets, refreshed there
                    stay.remove(g)
                    access_changes.pop(g.advertiser_id, None)
                    if self._own_access(g, results):
                        own.append(g)
            if access_changes:
                self.access, dropped = r.vault.write_pack("access", pack_id, self.access, access_changes)
                for g in [g for g in stay if g.advertiser_id in dropped]:
                    # its entry was changed meanwhile (a revoke removed it): not ours to record
                    stay.remove(g)
                    r.store.release_lease(g.held.lease)
                    results[g.advertiser_id] = RefreshResult(g.advertiser_id, "superseded", reason="entry_changed")
        except Exception:
            for g in got + spilled:
                r._note_error(g.advertiser_id, "refresh_incomplete")
                r.store.release_lease(g.held.lease)
            raise

        # --- 5. the table, per advertiser ----------------------------------------------------------
        def record(item: tuple[Got, str | None]) -> RefreshResult:
            g, pack = item
            try:
                return r._decorate(r._record(g.held.advertiser, g.held.lease, g.tokens, g.rotated, g.held.cause,
                                             self.force_profiles, pack=pack), g.held)
            except Exception:  # noqa: BLE001 - still due where it was: the next run finds it
                r._note_error(g.advertiser_id, "refresh_incomplete")
                return RefreshResult(g.advertiser_id, "failed", reason="refresh_incomplete")
            finally:
                r.store.release_lease(g.held.lease)

        work = ([(g, pack_id if g.joiner else None) for g in stay] + [(g, "") for g in leave]
                + [(g, None) for g in own + spilled])
        for g, outcome in zip([w[0] for w in work], run_all(record, work)):
            results[g.advertiser_id] = outcome
        joined = [g.advertiser_id for g in stay if g.joiner and results[g.advertiser_id].outcome == "refreshed"]
        moved_out = [g.advertiser_id for g in leave if results[g.advertiser_id].outcome == "refreshed"]
        for g in own:  # joiners that did not fit: a pack with room takes them in later
            if g.joiner and results[g.advertiser_id].outcome == "refreshed":
                r.store.enter_lobby(g.advertiser_id)
        for g in leave:
            if g.advertiser_id not in moved_out:  # its pointer did not move: take our copy back
                status = r.store.pack_pointers([g.advertiser_id]).get(g.advertiser_id, (None, ""))[0]
                r.vault.undo_grant(g.advertiser_id, receipts[g.advertiser_id], revoked=status is not CONNECTED)
        # joiners refused (revoked or re-consented while joining) and members that moved out: their
        # entries go now (the refused must not stay; the moved would wait for a job that may never come)
        gone = ([g.advertiser_id for g in stay if g.joiner and g.advertiser_id not in joined] + moved_out
                + [g.advertiser_id for g in spilled])
        for kind in ("refresh", "access") if gone else ():
            value = self.refresh if kind == "refresh" else self.access
            changes = {a: None for a in gone if a in value.entries}
            if changes:
                written, _ = r.vault.write_pack(kind, pack_id, value, changes)
                if kind == "refresh":
                    self.refresh = written
                else:
                    self.access = written

        # --- 6. joiners' own secrets, the pack item ------------------------------------------------
        for advertiser_id in joined:
            r.vault.delete_tokens(advertiser_id)
        entries = set(self.refresh.entries) | set(self.access.entries)
        if not entries and (self.refresh.version or self.access.version):
            r.vault.delete_pack(pack_id)
        size = max(self.refresh.size(), self.access.size()) if entries else 0
        r.store.record_pack(pack_id, self.owner, members=len(self.refresh.entries), size=size, now=r.clock())
        for advertiser_id in alone:
            results[advertiser_id] = r.refresh(advertiser_id, force=self.force_token)
        return [results[a] for a in self.job.advertisers()]

    # --- 2. one advertiser ---------------------------------------------------------------------------
    def _obtain(self, item: tuple[str, bool]) -> Got | RefreshResult:
        advertiser_id, joiner = item
        r = self.r
        try:
            advertiser = r.store.get_advertiser(advertiser_id)
            if advertiser is None:
                return RefreshResult(advertiser_id, "not_connected", reason="unknown")
            if self.deadline is not None and self.deadline.remaining() <= 0:
                # too little of the invocation is left to refresh and store it: the next run does
                self._due_again(advertiser)
                return RefreshResult(advertiser_id, "failed", reason="out_of_time")
            # a joiner is refreshed whatever its deadline: from then on it shares the pack's
            held = r._begin(advertiser, force_token=self.force_token or joiner, force_profiles=self.force_profiles,
                            early=packs.ALIGN_SECONDS, lease_until=self.until)
        except Exception:  # noqa: BLE001 - this one stays due; the others go on
            r._note_error(advertiser_id, "refresh_incomplete")
            return RefreshResult(advertiser_id, "failed", reason="refresh_incomplete")
        if isinstance(held, RefreshResult):
            return held
        try:
            if joiner:
                stored, save, current = self._own(advertiser_id, held)
            else:
                stored, save, current = self._member(advertiser_id, held)
            got = r._obtain(held.advertiser, held.lease, stored, save, current)
        except (LwaError, RefreshTokenUnsaved) as exc:  # its reason is recorded; the next run retries it
            r.store.release_lease(held.lease)
            self._due_again(held.advertiser)
            return RefreshResult(advertiser_id, "failed", reason=exc.code)
        except Exception:  # noqa: BLE001
            r._note_error(advertiser_id, "refresh_incomplete")
            r.store.release_lease(held.lease)
            self._due_again(held.advertiser)
            return RefreshResult(advertiser_id, "failed", reason="refresh_incomplete")
        if isinstance(got, RefreshResult):
            r.store.release_lease(held.lease)
            return r._decorate(got, held)
        tokens, rotated = got
        return Got(held, joiner, tokens, rotated, tokens.refresh_token if rotated else stored.value)

    def _own_access(self, g: Got, results: dict[str, RefreshResult]) -> bool:
        """A joiner staying in its own secrets gets its access token there, as a refresh of its own
        does (``Refresher._refresh_held``): only while its lease and grant hold (a re-consent's new
        token is never overwritten), and never into a secret a revoke deleted. False: not stored,
        its result says why, its lease is let go."""
        r = self.r
        if r.store.hold_lease(g.held.lease, r.clock(), self.until) is None:
            results[g.advertiser_id] = RefreshResult(g.advertiser_id, "superseded", reason="lease_lost")
        else:
            try:
                r.vault.put_access_token(g.advertiser_id, g.tokens.access_token, g.tokens.expires_at)
                return True
            except TokensDeleted:  # revoked after the lease check
                results[g.advertiser_id] = RefreshResult(g.advertiser_id, "not_connected", reason="tokens_deleted")
        r.store.release_lease(g.held.lease)
        return False

    def _due_again(self, advertiser) -> None:
        """A refresh that failed is due at the dispatcher's next run, as a job of its own would be
        delivered again, not after the snooze (which would leave it minutes of its lead): its
        deadline goes back to where its token says. Best effort: the snooze ends by itself."""
        if advertiser.token_expires_at is None:
            return
        try:
            self.r.store.set_deadline(advertiser.advertiser_id, self.r._deadline(
                advertiser, advertiser.token_expires_at, advertiser.profiles_at or advertiser.connected_at,
                advertiser.pending_regions))
        except Exception:  # noqa: BLE001
            pass

    def _member(self, advertiser_id: str, held: Held):
        entry = self.refresh.entries.get(advertiser_id)
        stored = StoredRefreshToken(entry["r"], str(entry.get("v"))) if entry and isinstance(entry.get("r"), str) else None

        def save(tokens: TokenSet, now: float) -> None:
            with self._lock:  # rotations of one job are written one after the other, each merged
                base = self.refresh
                if _version(base.entries.get(advertiser_id)) != stored.version:
                    raise RefreshTokenSuperseded()
                entry = packs.refresh_entry(tokens.refresh_token, now, held.lease.fence)
                try:
                    written, dropped = self.r.vault.write_pack("refresh", self.pack_id, base, {advertiser_id: entry})
                except PackTooLarge:  # the rotated token does not fit the pack: its own secrets hold it
                    self._spill(advertiser_id, held, tokens, now)
                    return
                self.refresh = written
                if advertiser_id in dropped:
                    raise RefreshTokenSuperseded()

        def current() -> str | None:
            entry = self.r.vault.read_pack("refresh", self.pack_id).entries.get(advertiser_id)
            return None if entry is None else str(entry.get("v"))

        return stored, save, current

    def _spill(self, advertiser_id: str, held: Held, tokens: TokenSet, now: float) -> None:
        """A member whose rotated refresh token no longer fits the pack moves out at once, before
        anything else: both tokens into its own secrets (``put_grant``), then its pointer. The
        pack's entries (the old tokens) are unused from then on and go at the pack's next write."""
        r = self.r
        receipt = r.vault.put_grant(advertiser_id, tokens, now)
        if not r.store.set_pack(advertiser_id, "", held.lease):  # revoked or re-consented meanwhile
            status = r.store.pack_pointers([advertiser_id]).get(advertiser_id, (None, ""))[0]
            r.vault.undo_grant(advertiser_id, receipt, revoked=status is not CONNECTED)
            raise RefreshTokenSuperseded()
        self.spilled.add(advertiser_id)

    def _own(self, advertiser_id: str, held: Held):
        try:
            stored = self.r.vault.get_refresh_token(advertiser_id)
        except RefreshTokenMissing:
            stored = None

        def save(tokens: TokenSet, now: float) -> None:
            self.r.vault.replace_refresh_token(advertiser_id, tokens.refresh_token, now, replaces=stored.version,
                                               fence=held.lease.fence)

        def current() -> str | None:
            try:
                return self.r.vault.get_refresh_token(advertiser_id).version
            except RefreshTokenMissing:
                return None

        return stored, save, current

    # --- 3. what fits ----------------------------------------------------------------------------
    def _fit(self, stay: list[Got], leave: list[Got], stale_refresh: dict, stale_access: dict):
        """(stay, leave, own): joiners are admitted while the values stay under ``ADMIT_BYTES``
        (the rest is room for tokens that grow when they rotate), else they stay in their own
        secrets; past ``VALUE_LIMIT`` the members with the largest tokens move out."""
        own: list[Got] = []
        stay, leave = list(stay), list(leave)
        while any(g.joiner for g in stay) and self._size(stay, stale_refresh, stale_access) > packs.ADMIT_BYTES:
            g = [g for g in stay if g.joiner][-1]
            stay.remove(g)
            own.append(g)
        while stay and self._size(stay, stale_refresh, stale_access) > packs.VALUE_LIMIT:
            g = max(stay, key=lambda g: len(g.refresh_token) + len(g.tokens.access_token))
            stay.remove(g)
            leave.append(g)
        return stay, leave, own

    def _size(self, stay: Sequence[Got], stale_refresh: dict, stale_access: dict) -> int:
        """Bytes of the larger of the two values this job writes in step 4: the members moving
        out keep their entries as they are there (removed only after their pointer moved)."""
        refresh = {a: e for a, e in self.refresh.entries.items() if a not in stale_refresh}
        access = {a: e for a, e in self.access.entries.items() if a not in stale_access}
        for g in stay:
            if g.joiner:
                refresh[g.advertiser_id] = packs.refresh_entry(g.refresh_token, 0.0, g.held.lease.fence)
            access[g.advertiser_id] = packs.access_entry(g.tokens.access_token, g.tokens.expires_at)
        return max(len(packs.encode(refresh).encode()), len(packs.encode(access).encode()))


def _version(entry: dict | None) -> str | None:
    return None if entry is None else str(entry.get("v"))


def _expires(entry: dict) -> float:
    try:
        return float(entry.get("e", 0))
    except (TypeError, ValueError):
        return 0.0


__all__ = ["PackRun", "remove_from_pack", "run_pack_job"]
