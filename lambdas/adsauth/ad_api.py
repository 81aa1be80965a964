"""python-amazon-ad-api (``ad_api``) on adsauth tokens: the library's endpoint wrappers with the
access token from ``adsauth.client``, and no refresh token or client secret in the consumer.

    from ad_api.api import Profiles, sponsored_products
    from adsauth.ad_api import ad_api_kwargs, call_ad_api

    profiles = Profiles(**ad_api_kwargs(profile_id)).list_profiles().payload
    campaigns = call_ad_api(profile_id, lambda kw: sponsored_products.CampaignsV3(**kw).list_campaigns(
        body={"stateFilter": {"include": ["ENABLED"]}})).payload

Tested against python-amazon-ad-api 1.2.9 (``adsauth[ad-api]`` pins it); see ``docs/ad-api.md``.

What the library does, and how this module meets it:

- It refuses credentials without ``refresh_token`` and ``client_secret`` even when it is given an
  access token. The kwargs carry fixed, non-secret placeholders for both: the library never sends
  them, because with ``access_token`` given it never asks LwA for one.
- It prefers ``AD_API_CLIENT_ID`` + ``AD_API_CLIENT_SECRET`` + ``AD_API_REFRESH_TOKEN`` from the
  environment over the credentials it is passed. A consumer holding either secret is refused here
  (``ClientConfigurationError``, naming the variable only) instead of being silently overridden.
  The kwargs pass a ``credentials`` dict, so its config file (``credentials.yml``) is never read.
- A client object keeps the token it was built with. ``ad_api_kwargs`` promises
  ``min_remaining_minutes`` (default ``ADSAUTH_MIN_REMAINING_MINUTES``, else 10) from the moment it
  is called: build the wrapper per call or per batch — ``call_ad_api`` does, and it is cheap, as
  ``adsauth.client`` caches the token — rather than keeping one for a long loop.
- A 401 (a renewed or withdrawn token) is raised by the library as its own exception;
  ``call_ad_api`` re-reads the token from Secrets Manager once, past the cache, and calls again.
  A second 401 is ``AdsApiRejected`` (or ``NeedsReauthorization``), never a loop.
- It reaches the host of its ``marketplace``. The kwargs give the profile's region (``Marketplaces``
  NA, EU, or JP for FE: the library has no FE member, and JP's host is FE's); when
  ``ADS_API_URL_<R>`` overrides that host (the local stack), an object with that ``endpoint``, the
  one attribute of a marketplace the library reads.
- With ``debug=True`` it logs the request headers, bearer token included: the kwargs pin
  ``debug=False`` (passing ``debug`` as well is then a ``TypeError``). Its requests have no timeout
  unless given one: the kwargs set ``timeout``.

``ad_api`` is imported inside the functions, so ``adsauth.client`` users without the library are
unaffected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from adsauth import client
from adsauth.client import AdsApiRejected, AdsApiUnreachable, ClientConfigurationError, NeedsReauthorization
from adsauth.regions import Region

__all__ = ["TESTED_VERSION", "ad_api_kwargs", "call_ad_api"]

TESTED_VERSION = "1.2.9"
DEFAULT_TIMEOUT_SECONDS = 10.0
# What the library insists on finding; never sent (it only calls LwA when it has no access token).
NOT_HELD = "not-held-by-this-consumer:adsauth"
# The library reads these (all three together win over its ``credentials`` argument).
_LIBRARY_SECRET_VARIABLES = ("AD_API_REFRESH_TOKEN", "AD_API_CLIENT_SECRET")

# The library names marketplaces, not regions; only the host matters to it (it has no "FE").
_MARKETPLACE_OF_REGION = {Region.NA: "NA", Region.EU: "EU", Region.FE: "JP"}

T = TypeVar("T")


@dataclass(frozen=True)
class AdsApiHost:
    """Stands in for an ``ad_api.base.Marketplaces`` member when the host is overridden."""

    region: Region
    endpoint: str


def ad_api_kwargs(profile_id: int | str, *, min_remaining_minutes: float | None = None,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Keyword arguments for any ``ad_api`` endpoint class, scoped to ``profile_id``:
    ``credentials`` (client id, profile id, placeholders), ``access_token`` (valid for at least
    ``min_remaining_minutes``), ``marketplace`` (the profile's region), ``timeout``,
    ``verify_additional_credentials=False`` and ``debug=False``.

    Raises the ``adsauth.client`` errors: ``AdvertiserNotFound`` for a profile no connected
    advertiser has, ``NeedsReauthorization``, ``TokenUnavailable``, ``ClientConfigurationError``."""
    return _kwargs(_profile(profile_id), min_remaining_minutes=min_remaining_minutes, timeout=timeout, force=False)


def call_ad_api(profile_id: int | str, call: Callable[[dict[str, Any]], T], *,
                min_remaining_minutes: float | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> T:
    """``call(kwargs)`` with fresh ``ad_api_kwargs``; after a 401, once more with a token re-read
    from Secrets Manager. A second 401: ``NeedsReauthorization`` when the advertiser must
    authorize again, else ``AdsApiRejected`` (status 401). A connection failure or timeout:
    ``AdsApiUnreachable``. Other library errors (400, 429 …) are the library's, raised as they are.

    Only the 401 is retried: the API refused the request before acting on it, so even a create is
    safe to send again. The library itself retries nothing (a 429 carries ``Retry-After`` in the
    exception's ``headers``)."""
    from ad_api.base.exceptions import AdvertisingApiUnauthorizedException
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import Timeout

    pid = _profile(profile_id)
    for force in (False, True):
        kwargs = _kwargs(pid, min_remaining_minutes=min_remaining_minutes, timeout=timeout, force=force)
        try:
            return call(kwargs)
        except AdvertisingApiUnauthorizedException:
            continue
        except Timeout:  # before ConnectionError: ConnectTimeout is both
            raise AdsApiUnreachable(profile_id=pid, reason="timeout") from None
        except RequestsConnectionError:  # from None: its message holds the URL, never needed here
            raise AdsApiUnreachable(profile_id=pid, reason="connection failed") from None
    advertiser_id = client.advertiser_for_profile(pid)
    client.forget_profile(pid)  # the profile may have moved to a newer grant: look again next time
    if client.advertiser_status(advertiser_id) in client.REAUTH_STATUSES:
        raise NeedsReauthorization(advertiser_id, pid)
    raise AdsApiRejected(advertiser_id, pid, status=401)


def _profile(profile_id: int | str) -> int:
    # checked, not converted: int() of a bad value names the value in its error
    if isinstance(profile_id, bool) or not (isinstance(profile_id, int) or (
            isinstance(profile_id, str) and profile_id.isascii() and profile_id.isdigit())):
        raise ValueError("profile_id must be a positive integer")
    pid = int(profile_id)
    if pid <= 0:
        raise ValueError("profile_id must be a positive integer")
    return pid


def _kwargs(profile_id: int, *, min_remaining_minutes: float | None, timeout: float, force: bool) -> dict[str, Any]:
    _refuse_library_secrets(os.environ)
    if not 0 < timeout <= 300:
        raise ValueError("timeout must be more than 0 and at most 300 seconds")
    config = client.get_config()
    if not config.client_id:
        raise ClientConfigurationError("environment variable ADSAUTH_LWA_CLIENT_ID (or LWA_CLIENT_ID) is required")
    minutes = config.min_remaining_minutes if min_remaining_minutes is None else min_remaining_minutes
    if not 0 <= minutes < 60:
        raise ValueError("min_remaining_minutes must be from 0 to 59")
    if force:  # past the cache: a 401 says the cached token is no longer the current one
        token = client._token(client.advertiser_for_profile(profile_id), minutes * 60, force=True).value
    else:
        token = client.get_access_token(profile_id=profile_id, min_remaining_minutes=minutes)
    region = client.region_of_profile(profile_id)
    return {
        "credentials": {"client_id": config.client_id, "profile_id": str(profile_id),
                        "refresh_token": NOT_HELD, "client_secret": NOT_HELD},
        "access_token": token,
        "marketplace": _marketplace(region, config.endpoints[region].ads_api_url),
        "verify_additional_credentials": False,
        "timeout": timeout,
        "debug": False,
    }


def _refuse_library_secrets(env: Mapping[str, str]) -> None:
    for name in _LIBRARY_SECRET_VARIABLES:
        if name in env:  # the library tests presence, not value
            raise ClientConfigurationError(
                f"environment variable {name} is set: python-amazon-ad-api would use it instead of the "
                "adsauth token; remove it (an adsauth consumer holds no refresh token or client secret)")


def _marketplace(region: Region, url: str) -> Any:
    from ad_api.base import Marketplaces

    member, url = Marketplaces[_MARKETPLACE_OF_REGION[region]], url.rstrip("/")
    return member if member.endpoint == url else AdsApiHost(region, url)
