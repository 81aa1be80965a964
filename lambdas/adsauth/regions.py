"""The three Amazon Ads regions and their hosts.

Each region pairs an LwA authorize URL with its token URL and an Ads API host. Every URL can be
overridden by an environment variable (``LWA_AUTHORIZE_URL_NA`` …), which is how the local stack
points the same code at the emulator.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping


class Region(str, enum.Enum):
    NA = "NA"
    EU = "EU"
    FE = "FE"

    @classmethod
    def parse(cls, value: object) -> "Region":
        """Return the region named by ``value`` or raise ``ValueError`` with a fixed message."""
        if isinstance(value, str) and value in cls.__members__:
            return cls[value]
        raise ValueError("region must be one of NA, EU, FE")


@dataclass(frozen=True)
class Endpoints:
    authorize_url: str
    token_url: str
    ads_api_url: str


PRODUCTION: Mapping[Region, Endpoints] = {
    Region.NA: Endpoints(
        "https://www.amazon.com/ap/oa",
        "https://api.amazon.com/auth/o2/token",
        "https://advertising-api.amazon.com",
    ),
    Region.EU: Endpoints(
        "https://eu.account.amazon.com/ap/oa",
        "https://api.amazon.co.uk/auth/o2/token",
        "https://advertising-api-eu.amazon.com",
    ),
    Region.FE: Endpoints(
        "https://apac.account.amazon.com/ap/oa",
        "https://api.amazon.co.jp/auth/o2/token",
        "https://advertising-api-fe.amazon.com",
    ),
}


def endpoints_from_env(env: Mapping[str, str]) -> dict[Region, Endpoints]:
    """Production endpoints, each overridable by ``LWA_AUTHORIZE_URL_<R>``, ``LWA_TOKEN_URL_<R>``
    and ``ADS_API_URL_<R>``."""
    result = {}
    for region, default in PRODUCTION.items():
        result[region] = Endpoints(
            authorize_url=env.get(f"LWA_AUTHORIZE_URL_{region.value}", default.authorize_url),
            token_url=env.get(f"LWA_TOKEN_URL_{region.value}", default.token_url),
            ads_api_url=env.get(f"ADS_API_URL_{region.value}", default.ads_api_url),
        )
    return result
