"""What downstream Lambdas import: an access token with time left for an advertiser or a profile
(``get_access_token``), and ``AdsApiSession``, which sends it to the profile's regional Ads API host.

Only the access-token secret (``<prefix>access/<advertiser>``) and the table are read, never a refresh
token or the LwA client secret. Tokens are cached in memory for at most five minutes and never past the
point where they would lack the promised time. The cache is ours, not Powertools', because its lifetime
depends on the value read (``expires_at``). No error message and no ``repr`` ever holds a token value.
"""

from __future__ import annotations

import json as jsonlib
import os
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlencode

from adsauth import schema
from adsauth.regions import Endpoints, Region, endpoints_from_env

if TYPE_CHECKING:  # urllib3 costs ~100 ms to import: only sessions pay for it
    from adsauth.adapters.http import HttpClient, HttpResponse

_clock = time.time  # tests move time by replacing this
MAX_CACHE_SECONDS = 300  # a renewed or revoked token is noticed within five minutes
PROFILE_CACHE_SECONDS = 3600  # profiles rarely move between grants
REAUTH_STATUSES = frozenset({"needs_reauth", "revoked"})
# a stored token is served only for these: connected, or needs_reauth while its last token lasts.
# Any other status means the secret is left over from a completion that lost a race against a
# revoke or a cancel (it is being taken back): never served.
SERVING_STATUSES = frozenset({"connected", "needs_reauth"})


# --- errors: fixed messages naming ids only ------------------------------------------------------
class AdsAuthClientError(Exception):
    template = "the adsauth client failed"

    def __init__(self, advertiser_id: str | None = None, profile_id: int | None = None, **details: Any) -> None:
        self.advertiser_id, self.profile_id = advertiser_id, profile_id
        self.__dict__.update(details)  # status, reason: numbers and fixed words only
        super().__init__(self.template.format(advertiser_id=advertiser_id, profile_id=profile_id, **details))


class ClientConfigurationError(AdsAuthClientError):
    """A required environment variable is missing or malformed (the message names it)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.advertiser_id = self.profile_id = None


class AdvertiserNotFound(AdsAuthClientError):
    template = "advertiser {advertiser_id} is not known or has never connected"

    def __init__(self, advertiser_id: str | None = None, profile_id: int | None = None) -> None:
        if advertiser_id is None:
            self.template = "profile {profile_id} belongs to no known advertiser"
        super().__init__(advertiser_id, profile_id)


class NeedsReauthorization(AdsAuthClientError):
    template = "advertiser {advertiser_id} must authorize again"


class TokenUnavailable(AdsAuthClientError):
    template = ("no access token with enough time left for advertiser {advertiser_id}: "
                "the refresher has not renewed the token yet")


class AdsApiRejected(AdsAuthClientError):
    template = "the Ads API rejected the request for profile {profile_id} (HTTP {status})"


class AdsApiUnreachable(AdsAuthClientError):
    template = "the Ads API did not answer for profile {profile_id} ({reason})"


# --- configuration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientConfig:
    table_name: str
    secret_prefix: str
    client_id: str  # only AdsApiSession needs it
    min_remaining_minutes: float
    endpoints: Mapping[Region, Endpoints] = field(repr=False)


def _env(env: Mapping[str, str], name: str, *, required: bool = True) -> str:
    value = (env.get(f"ADSAUTH_{name}") or env.get(name) or "").strip()
    if required and not value:
        raise ClientConfigurationError(f"environment variable ADSAUTH_{name} (or {name}) is required")
    return value


def config_from_env(env: Mapping[str, str]) -> ClientConfig:
    try:
        minutes = float(env.get("ADSAUTH_MIN_REMAINING_MINUTES", "").strip() or "10")
    except ValueError:
        minutes = -1.0
    if not 0 <= minutes < 60:  # a token lives 60 minutes
        raise ClientConfigurationError("environment variable ADSAUTH_MIN_REMAINING_MINUTES must be a number from 0 to 59")
    return ClientConfig(
        table_name=_env(env, "TABLE_NAME"),
        secret_prefix=_env(env, "SECRET_PREFIX"),
        client_id=_env(env, "LWA_CLIENT_ID", required=False),
        min_remaining_minutes=minutes,
        endpoints=endpoints_from_env(env),
    )


@lru_cache(maxsize=1)
def get_config() -> ClientConfig:
    return config_from_env(os.environ)


@lru_cache(maxsize=1)
def _session():
    import boto3  # lazily: importing this module stays cheap

    return boto3.session.Session()


@lru_cache(maxsize=1)
def _secrets():  # one client per process, created on first use
    return _session().client("secretsmanager")


@lru_cache(maxsize=1)
def _store():
    from adsauth.adapters.table import DynamoStore

    return DynamoStore(table=_session().resource("dynamodb").Table(get_config().table_name))


# --- tokens ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float
    advertiser_id: str

    def remaining_seconds(self, now: float | None = None) -> float:
        return self.expires_at - (_clock() if now is None else now)


_lock = threading.Lock()
_tokens: dict[str, tuple[AccessToken, float]] = {}  # advertiser -> (token, cached until)
_profiles: dict[int, tuple[str, float]] = {}  # profile -> (advertiser, cached until)
_regions: dict[int, Region] = {}


def clear_cache() -> None:
    """Forget cached tokens, profile mappings, configuration and AWS clients."""
    with _lock:
        _tokens.clear()
        _profiles.clear()
        _regions.clear()
    for cached in (get_config, _session, _secrets, _store):
        cached.cache_clear()


def get_access_token(advertiser_id: str | None = None, profile_id: int | None = None, *,
                     min_remaining_minutes: float | None = None) -> str:
    """An access token with at least ``min_remaining_minutes`` (default from the environment) left."""
    return get_token_info(advertiser_id, profile_id, min_remaining_minutes=min_remaining_minutes).value


def get_token_info(advertiser_id: str | None = None, profile_id: int | None = None, *,
                   min_remaining_minutes: float | None = None) -> AccessToken:
    if (advertiser_id is None) == (profile_id is None):
        raise TypeError("pass exactly one of advertiser_id and profile_id")
    minutes = get_config().min_remaining_minutes if min_remaining_minutes is None else min_remaining_minutes
    if not 0 <= minutes < 60:
        raise ValueError("min_remaining_minutes must be from 0 to 59")
    if advertiser_id is not None:
        return _token(advertiser_id, minutes * 60, force=False)
    try:
        return _token(advertiser_for_profile(int(profile_id)), minutes * 60, force=False)
    except (AdvertiserNotFound, NeedsReauthorization):
        forget_profile(int(profile_id))  # the profile may have moved to a newer grant: look again next time
        raise


def _token(advertiser_id: str, minimum: float, *, force: bool) -> AccessToken:
    if not force:
        cached, now = _tokens.get(advertiser_id), _clock()
        if cached and now < cached[1] and cached[0].remaining_seconds(now) >= minimum:
            return cached[0]
    token = _read_token(advertiser_id)
    status = advertiser_status(advertiser_id)  # once per cache miss: the lifecycle decides, not the secret
    if status not in SERVING_STATUSES:
        with _lock:
            _tokens.pop(advertiser_id, None)
        if status in REAUTH_STATUSES:
            raise NeedsReauthorization(advertiser_id)
        raise AdvertiserNotFound(advertiser_id=advertiser_id)
    remaining = token.remaining_seconds()
    max_age = min(MAX_CACHE_SECONDS, remaining - minimum)
    with _lock:
        if max_age > 0:
            _tokens[advertiser_id] = (token, _clock() + max_age)
        else:  # never keep a token that no longer has the promised time left
            _tokens.pop(advertiser_id, None)
    if remaining < minimum:
        if status in REAUTH_STATUSES:
            raise NeedsReauthorization(advertiser_id)
        raise TokenUnavailable(advertiser_id)
    return token


def _read_token(advertiser_id: str) -> AccessToken:
    client = _secrets()
    try:
        secret = client.get_secret_value(SecretId=f"{get_config().secret_prefix}access/{advertiser_id}")
    except client.exceptions.ResourceNotFoundException:
        if advertiser_status(advertiser_id) in REAUTH_STATUSES:
            raise NeedsReauthorization(advertiser_id) from None
        raise AdvertiserNotFound(advertiser_id=advertiser_id) from None
    try:
        value = jsonlib.loads(secret["SecretString"])
        token = AccessToken(str(value["access_token"]), float(value["expires_at"]), advertiser_id)
    except (KeyError, TypeError, ValueError):  # never chain: the parse error could quote the value
        raise TokenUnavailable(advertiser_id) from None
    return token


def advertiser_status(advertiser_id: str) -> str | None:
    item = _store().table.get_item(Key=schema.advertiser_key(advertiser_id), ProjectionExpression="#s",
                                   ExpressionAttributeNames={"#s": "status"}).get("Item")
    return item.get("status") if item else None


def advertiser_for_profile(profile_id: int) -> str:
    cached, now = _profiles.get(profile_id), _clock()
    if cached and now < cached[1]:
        return cached[0]
    advertiser_id = _store().advertiser_by_profile(profile_id)
    if advertiser_id is None:
        raise AdvertiserNotFound(profile_id=profile_id)
    with _lock:
        _profiles[profile_id] = (advertiser_id, now + PROFILE_CACHE_SECONDS)
    return advertiser_id


def forget_profile(profile_id: int) -> None:
    with _lock:
        _profiles.pop(profile_id, None)
        _regions.pop(profile_id, None)


def region_of_profile(profile_id: int) -> Region:
    if profile_id in _regions:
        return _regions[profile_id]
    advertiser_id = advertiser_for_profile(profile_id)
    regions = [p.region for p in _store().list_profiles(advertiser_id) if p.profile_id == profile_id]
    if not regions:
        raise AdvertiserNotFound(profile_id=profile_id)
    with _lock:
        _regions[profile_id] = regions[0]
    return regions[0]


# --- Ads API ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _http() -> HttpClient:
    from adsauth.adapters.http import HttpClient

    return HttpClient(timeout_seconds=10.0, max_attempts=4, backoff_cap_seconds=8.0)


class AdsApiSession:
    """Ads API calls for one profile: bearer token, client id and scope headers, the profile's
    regional host, 429 retried (``Retry-After``), and one token re-read after a 401."""

    def __init__(self, profile_id: int, *, region: str | Region | None = None, http: HttpClient | None = None) -> None:
        self.config = get_config()
        if not self.config.client_id:
            raise ClientConfigurationError("environment variable ADSAUTH_LWA_CLIENT_ID (or LWA_CLIENT_ID) is required")
        self.profile_id = int(profile_id)
        self._region = Region.parse(region.upper() if isinstance(region, str) else region) if region else None
        self._http = http or _http()

    def __repr__(self) -> str:
        return f"AdsApiSession(profile_id={self.profile_id}, region={self._region and self._region.value})"

    @property
    def region(self) -> Region:
        if self._region is None:
            self._region = region_of_profile(self.profile_id)
        return self._region

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> HttpResponse:
        """Any non-401 answer is returned as is; the caller judges its status."""
        return self._send(method, path, json=json, params=params, headers=headers, scoped=True)

    def list_profiles(self, **filters: str) -> list[dict]:
        """``GET /v2/profiles`` in this session's region; filters as in the API (``profileTypeFilter``…)."""
        response = self._send("GET", "/v2/profiles", json=None, params=filters or None, headers=None, scoped=False)
        try:
            profiles = response.json() if response.status == 200 else None
        except ValueError:
            profiles = None
        if not isinstance(profiles, list):
            raise AdsApiRejected(profile_id=self.profile_id, status=response.status)
        return profiles

    def _send(self, method: str, path: str, *, json: Any, params: Mapping[str, Any] | None,
              headers: Mapping[str, str] | None, scoped: bool) -> HttpResponse:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError("path must be relative to the Ads API host, e.g. /v2/profiles")
        url = self.config.endpoints[self.region].ads_api_url + path + (f"?{urlencode(params)}" if params else "")
        body = jsonlib.dumps(json).encode("utf-8") if json is not None else None
        advertiser_id = advertiser_for_profile(self.profile_id)
        minimum = self.config.min_remaining_minutes * 60
        for force in (False, True):
            token = _token(advertiser_id, minimum, force=force)
            sent = {"Accept": "application/json", "Amazon-Advertising-API-ClientId": self.config.client_id}
            if scoped:
                sent["Amazon-Advertising-API-Scope"] = str(self.profile_id)
            if body is not None:
                sent["Content-Type"] = "application/json"
            sent.update(headers or {})
            sent["Authorization"] = f"Bearer {token.value}"
            response = self._attempts(method.upper(), url, sent, body)
            if response.status != 401:
                return response
        forget_profile(self.profile_id)
        if advertiser_status(advertiser_id) in REAUTH_STATUSES:
            raise NeedsReauthorization(advertiser_id, self.profile_id)
        raise AdsApiRejected(advertiser_id, self.profile_id, status=401)

    def _attempts(self, method: str, url: str, headers: dict, body: bytes | None) -> HttpResponse:
        """The package's one retry loop (``adapters.http``), its policy by method: 429 and
        failures that prove nothing was sent are always retried; 5xx and timeouts only when the
        method is idempotent, so a create is never sent twice (its 5xx is returned as it is)."""
        from adsauth.adapters.http import HttpUnavailable, policy_for

        try:
            return self._http.request(method, url, headers=headers, body=body, policy=policy_for(method))
        except HttpUnavailable as exc:
            raise AdsApiUnreachable(profile_id=self.profile_id, reason=exc.reason) from None
