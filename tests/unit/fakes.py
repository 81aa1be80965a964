"""In-memory stand-ins for the ports, for unit tests of the domain."""

from __future__ import annotations

import itertools
from dataclasses import replace

from adsauth.errors import AdsApiUnavailable, GrantInvalid, LwaUnavailable
from adsauth.models import AdvertiserStatus, Profile, TokenSet
from adsauth.regions import Region
from adsauth.settings import Settings, settings_from_env


def make_settings(**overrides) -> Settings:
    env = {
        "TABLE_NAME": "t",
        "PUBLIC_BASE_URL": "https://auth.example.com/prod",
        "LWA_CLIENT_ID": "amzn1.application-oa2-client.test",
        "LWA_CLIENT_SECRET_NAME": "adsauth/test/lwa-client",
        "SECRET_PREFIX": "adsauth/test/advertisers/",
    }
    env.update(overrides)
    return settings_from_env(env)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeStore:
    def __init__(self) -> None:
        self.invitations, self.advertisers, self.states, self.consumed = {}, {}, {}, set()
        self.profiles: dict[str, dict[tuple, Profile]] = {}
        self.writes = 0

    def create_invitation(self, invitation, advertiser):
        if advertiser is None:
            assert invitation.advertiser_id in self.advertisers
        else:
            self.advertisers[advertiser.advertiser_id] = advertiser
        self.invitations[invitation.token_hash] = invitation
        self.writes += 1

    def get_invitation(self, token_hash):
        return self.invitations.get(token_hash)

    def get_advertiser(self, advertiser_id):
        return self.advertisers.get(advertiser_id)

    def put_state(self, pending, expires_at):
        self.states[pending.state_hash] = pending
        self.writes += 1

    def get_state(self, state_hash):
        return self.states.get(state_hash)

    def consume_state(self, state_hash, now):
        if state_hash not in self.states or state_hash in self.consumed:
            return False
        self.consumed.add(state_hash)
        return True

    def set_status(self, advertiser_id, status, reason, now, *, unless=None):
        adv = self.advertisers[advertiser_id]
        if unless is not None and adv.status is unless:
            return False
        self.advertisers[advertiser_id] = replace(adv, status=status, status_reason=reason, updated_at=now)
        self.writes += 1
        return True

    def record_connection(self, *, advertiser_id, invitation_hash, profiles, pending_regions, token_expires_at, now):
        adv = self.advertisers[advertiser_id]
        self.advertisers[advertiser_id] = replace(
            adv,
            status=AdvertiserStatus.CONNECTED,
            status_reason="",
            token_expires_at=token_expires_at,
            connected_at=now,
            pending_regions=tuple(pending_regions),
        )
        stored = self.profiles.setdefault(advertiser_id, {})
        for region, items in profiles.items():
            for p in items:
                stored[(region, p.profile_id)] = p
        if invitation_hash:
            inv = self.invitations[invitation_hash]
            self.invitations[invitation_hash] = replace(inv, completed_at=now)
        self.writes += 1

    def list_profiles(self, advertiser_id):
        return list(self.profiles.get(advertiser_id, {}).values())


class FakeVault:
    def __init__(self) -> None:
        self.refresh, self.access = {}, {}
        self.order: list[str] = []

    def put_refresh_token(self, advertiser_id, refresh_token, issued_at):
        self.refresh[advertiser_id] = refresh_token
        self.order.append("refresh")

    def put_access_token(self, advertiser_id, access_token, expires_at):
        self.access[advertiser_id] = (access_token, expires_at)
        self.order.append("access")


class FakeLwa:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple] = []
        self.fail: Exception | None = None
        self._n = itertools.count(1)

    def exchange_code(self, region, code, redirect_uri, code_verifier):
        self.calls.append((region, code, redirect_uri, code_verifier))
        if self.fail:
            raise self.fail
        n = next(self._n)
        return TokenSet(f"Atza|access-{n}", f"Atzr|refresh-{n}", self.clock() + 3600)


def profile(pid: int, region: Region, country: str = "US") -> Profile:
    return Profile(pid, region, country, "USD", "America/Los_Angeles", "ATVPDKIKX0DER", f"A{pid}", "seller", f"Shop {pid}")


class FakeAds:
    def __init__(self) -> None:
        self.by_region = {Region.NA: [profile(1, Region.NA)], Region.EU: [profile(2, Region.EU, "GB")], Region.FE: []}
        self.down: set[Region] = set()
        self.calls: list[Region] = []

    def list_profiles(self, region, access_token):
        self.calls.append(region)
        if region in self.down:
            raise AdsApiUnavailable()
        return list(self.by_region[region])


__all__ = ["AdsApiUnavailable", "GrantInvalid", "LwaUnavailable"]
