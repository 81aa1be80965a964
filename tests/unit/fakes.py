"""In-memory stand-ins for the ports, for unit tests of the domain. The refresher's parts come
from ``local.simulation`` (the simulated day runs on the same ones)."""

from __future__ import annotations

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
        "OPERATOR_NAME": "Example Media",  # every stack sets it (cdk.json operator_name is required)
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
    """The in-memory table (``local.memory``), events on."""


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
