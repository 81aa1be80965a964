"""What downstream Lambdas import: an access token with time left for an advertiser or a profile
(``get_access_token``), and ``AdsApiSession``, which sends it to the profile's regional Ads API host.

Only access-token secrets and the table are read, never a refresh token or the LwA client secret.
The advertiser's item (one GetItem per cache miss) gives its status and where its token is: its own
secret ``<prefix>access/<advertiser>``, or, when it names a ``pack``, its entry in the shared secret
``<prefix>access/packs/<pack>`` (``adsauth.packs``). A move between the two writes the new place
before the pointer and removes the old one after it, so a token missing where the item said is looked
for once in the other place (and, if still missing, where the item says now).

Tokens are cached in memory for at most five minutes and never past the point where they would lack
the promised time; a pack's entries too, per pack, so advertisers of one pack cost one read of its
secret. The cache is ours, not Powertools', because its lifetime depends on the value read
(``expires_at``). No error message and no ``repr`` ever holds a token value.
"""

from __future__ import annotations

import json as jsonlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlencode

from adsauth import packs, schema
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
_packs: dict[str, tuple[dict[str, dict], float]] = {}  # pack -> (entries, read at)
_profiles: dict[int, tuple[str, float]] = {}  # profile -> (advertiser, cached until)
_regions: dict[int, Region] = {}


def clear_cache() -> None:
    """Forget cached tokens and packs, profile mappings, configuration and AWS clients."""
    with _lock:
        _tokens.clear()
        _packs.clear()
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
    # Once per cache miss: the item says where the token is; the lifecycle decides, not the
    # secret, and it is asked again AFTER the token is read, so a revoke that raced the read
    # (status first, tokens deleted after) is seen before the token is served.
    status, pack = _advertiser(advertiser_id)
    _refuse_unless_serving(advertiser_id, status)
    found = _read_token(advertiser_id, pack, minimum, force=force)
    if found is not None:
        status = _advertiser(advertiser_id)[0]
        _refuse_unless_serving(advertiser_id, status)
    if found is None:  # in neither place: a move may have finished since the item was read
        tried = pack
        status, pack = _advertiser(advertiser_id, consistent=True)
        _refuse_unless_serving(advertiser_id, status)
        found = _from_pack(advertiser_id, pack, minimum, force=force) if pack and pack != tried else None
        if found is None:
            if status in REAUTH_STATUSES:
                raise NeedsReauthorization(advertiser_id)
            raise AdvertiserNotFound(advertiser_id=advertiser_id)
    token, read_at = found
    now = _clock()
    remaining = token.remaining_seconds(now)
    # a token read from a cached pack is as old as that read
    until = min(read_at + MAX_CACHE_SECONDS, now + remaining - minimum)
    with _lock:
        if until > now:
            _tokens[advertiser_id] = (token, until)
        else:  # never keep a token that no longer has the promised time left
            _tokens.pop(advertiser_id, None)
    if remaining < minimum:
        if status in REAUTH_STATUSES:
            raise NeedsReauthorization(advertiser_id)
        raise TokenUnavailable(advertiser_id)
    return token


def _refuse_unless_serving(advertiser_id: str, status: str | None) -> None:
    if status in SERVING_STATUSES:
        return
    with _lock:
        _tokens.pop(advertiser_id, None)
    if status in REAUTH_STATUSES:
        raise NeedsReauthorization(advertiser_id)
    raise AdvertiserNotFound(advertiser_id=advertiser_id)


def _read_token(advertiser_id: str, pack: str, minimum: float, *, force: bool) -> tuple[AccessToken, float] | None:
    """The token where the item says, else in the other place (a move in progress); with the time
    it was read. None: in neither place."""
    if pack:
        found = _from_pack(advertiser_id, pack, minimum, force=force)
        if found is not None:
            return found
    return _from_own_secret(advertiser_id)


def _from_own_secret(advertiser_id: str) -> tuple[AccessToken, float] | None:
    text = _secret_string(f"{get_config().secret_prefix}access/{advertiser_id}")
    if text is None:
        return None
    try:
        value = jsonlib.loads(text)
    except ValueError:  # raised outside: the parse error (its context) could quote the value
        value = None
    if not isinstance(value, dict):
        raise TokenUnavailable(advertiser_id)
    return _parse(advertiser_id, value.get("access_token"), value.get("expires_at")), _clock()


def _from_pack(advertiser_id: str, pack_id: str, minimum: float, *, force: bool) -> tuple[AccessToken, float] | None:
    """The advertiser's entry in the pack, from the cached copy when that has it with enough time
    left, else from a new read of the pack's secret. None: the pack holds no entry for it."""
    cached = None if force else _packs.get(pack_id)
    if cached and _clock() < cached[1] + MAX_CACHE_SECONDS:
        entries, read_at = cached
        try:
            token = _entry_token(advertiser_id, entries.get(advertiser_id))
        except TokenUnavailable:
            token = None  # perhaps rewritten since: read once more
        if token is not None and token.remaining_seconds() >= minimum:
            return token, read_at
        # joined the pack or renewed since that read (or the refresher is late): read it once more
    entries, read_at = _read_pack(pack_id)
    token = _entry_token(advertiser_id, entries.get(advertiser_id))
    return None if token is None else (token, read_at)


def _read_pack(pack_id: str) -> tuple[dict[str, dict], float]:
    text = _secret_string(packs.access_name(get_config().secret_prefix, pack_id))
    entries, read_at = packs.decode(text), _clock()
    with _lock:
        if text is None:
            _packs.pop(pack_id, None)
        else:
            _packs[pack_id] = (entries, read_at)
    return entries, read_at


def _entry_token(advertiser_id: str, entry: dict | None) -> AccessToken | None:
    return None if entry is None else _parse(advertiser_id, entry.get("a"), entry.get("e"))


def _parse(advertiser_id: str, value: Any, expires_at: Any) -> AccessToken:
    # checked, not converted: a conversion error (even suppressed, as __context__) could quote a value
    number = isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool)
    if not (isinstance(value, str) and value and number and math.isfinite(expires_at)):
        raise TokenUnavailable(advertiser_id)
    return AccessToken(value, float(expires_at), advertiser_id)


def _secret_string(name: str) -> str | None:
    """A secret's current value; None when the secret does not exist."""
    client = _secrets()
    try:
        return client.get_secret_value(SecretId=name).get("SecretString", "")  # binary: malformed
    except client.exceptions.ResourceNotFoundException:
        return None


def advertiser_status(advertiser_id: str) -> str | None:
    return _advertiser(advertiser_id)[0]


def _advertiser(advertiser_id: str, *, consistent: bool = False) -> tuple[str | None, str]:
    """The advertiser's status and pack ("": its own secrets) in one GetItem; (None, "") when unknown."""
    item = _store().table.get_item(Key=schema.advertiser_key(advertiser_id), ProjectionExpression="#s, #p",
                                   ExpressionAttributeNames={"#s": "status", "#p": "pack"},
                                   ConsistentRead=consistent).get("Item")
    if not item:
        return None, ""
    pack = item.get("pack")
    return item.get("status"), pack if isinstance(pack, str) else ""


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
