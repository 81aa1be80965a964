"""In-memory stand-ins for the ports, for unit tests of the domain. The refresher's parts come
from ``local.simulation`` (the simulated day runs on the same ones)."""

from __future__ import annotations

from dataclasses import replace

from adsauth.errors import AdsApiUnavailable, GrantInvalid, LwaUnavailable
from adsauth.models import Profile
from adsauth.regions import Region
from adsauth.settings import Settings, settings_from_env
from local.simulation import MemoryNotifier, MemoryQueue, MemoryStore, MemoryVault, SimulatedLwa


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


class FakeStore(MemoryStore):
    def __init__(self, schedule=None) -> None:
        super().__init__(schedule)
        self.invitations, self.states, self.consumed = {}, {}, set()
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
        changed = super().set_status(advertiser_id, status, reason, now, unless=unless)
        self.writes += changed
        return changed

    def record_connection(self, *, advertiser_id, invitation_hash, profiles, pending_regions, token_expires_at, now):
        super().record_connection(
            advertiser_id=advertiser_id, invitation_hash=invitation_hash, profiles=profiles,
            pending_regions=pending_regions, token_expires_at=token_expires_at, now=now,
        )
        if invitation_hash:
            inv = self.invitations[invitation_hash]
            self.invitations[invitation_hash] = replace(inv, completed_at=now)
        self.writes += 1


class FakeVault(MemoryVault):
    """``refresh`` maps an advertiser to its current refresh token, ``access`` to (token, expiry);
    ``order`` lists the writes ("refresh", "access") in order."""


class FakeLwa(SimulatedLwa):
    """Code exchanges (``calls``, ``fail``) and refreshes (``refresh_calls``, ``refresh_fail``,
    ``rotate``, ``revoke``) at the fake clock's time."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.calls: list[tuple] = []
        self.fail: Exception | None = None

    def exchange_code(self, region, code, redirect_uri, code_verifier):
        self.calls.append((region, code, redirect_uri, code_verifier))
        if self.fail:
            raise self.fail
        return self.grant()


FakeQueue, FakeNotifier = MemoryQueue, MemoryNotifier


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
