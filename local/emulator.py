"""A local emulator of Login with Amazon (authorize, consent, token) and the Ads API profiles listing.

One HTTP server on 127.0.0.1 serves all three regions as path prefixes (``/na``, ``/eu``, ``/fe``):

    GET  /{r}/ap/oa            authorize: validates the request, shows the consent page
    POST /{r}/ap/oa/consent    the consent form: Allow -> ?code=..., Cancel -> ?error=access_denied
    POST /{r}/auth/o2/token    authorization_code and refresh_token grants (RFC 6749)
    GET  /{r}/v2/profiles      the Ads API profiles of the token's user in region r
    POST /{r}/sp/campaigns/list  Sponsored Products campaigns (v3) of the profile named by the
                               Amazon-Advertising-API-Scope header, which must be the token
                               user's profile in region r

It keeps the rules the broker must cope with: exact redirect_uri matching, PKCE, codes that expire
after five minutes and work once (a replay revokes the grant), codes redeemable only at the token
endpoint of the region that issued them, client authentication, revocable grants, optional refresh
token rotation, and injectable faults (latency, 429, 503, timeouts, connection resets, answers
that come too late, RFC 6749 §5.2 refusals). Token errors vary as §5.2 allows: ``invalid_request``
for a missing parameter (``code``, ``redirect_uri``, the PKCE ``code_verifier``), ``invalid_grant``
for a code or refresh token that is wrong, expired, used or revoked, ``invalid_client`` for client
authentication, ``unsupported_grant_type``; ``unauthorized_client`` and ``invalid_scope`` through the
``refuse`` fault. It logs nothing, so no token value can reach a log.

Faults (``fault(endpoint, mode, …)``): ``latency`` (added before the answer; they stack), ``429``,
``5xx``, ``timeout`` (the request is *not* processed: the answer, a 503, comes after
``timeout_sleep_s``), ``late`` (the request *is* processed — a code is used up, tokens are issued —
and the answer comes after ``timeout_sleep_s``, when the client has given up), ``reset`` (the
connection is dropped unanswered), ``refuse`` (token endpoint: the §5.2 ``error`` given).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from local import emulator_pages as pages

REGIONS = ("NA", "EU", "FE")
SCOPES = frozenset(pages.SCOPE_DESCRIPTIONS)
DEFAULT_PROFILES = pages.DEFAULT_PROFILES
DEFAULT_USER = "demo-user"
CODE_TTL_SECONDS = 300
ACCESS_TOKEN_TTL_SECONDS = 3600
MAX_BODY_BYTES = 64 * 1024
FAULT_ENDPOINTS = frozenset({"authorize", "token", "profiles", "campaigns"})
FAULT_MODES = frozenset({"latency", "429", "5xx", "timeout", "late", "reset", "refuse"})
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # what ``refuse`` sends: a §5.2 code, or any other one (unknown codes)
REVOKED = "User may have revoked or didn't grant the permission"
NOT_AUTHORIZED = "Not authorized to access this advertiser"
PROFILE_TYPES = frozenset({"seller", "vendor", "agency"})

_PKCE_VALUE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_ROUTE = re.compile(r"/(na|eu|fe)(/ap/oa|/ap/oa/consent|/auth/o2/token|/v2/profiles|/sp/campaigns/list)")
_ROUTES = {  # path suffix -> (endpoint name, method)
    "/ap/oa": ("authorize", "GET"),
    "/ap/oa/consent": ("consent", "POST"),
    "/auth/o2/token": ("token", "POST"),
    "/v2/profiles": ("profiles", "GET"),
    "/sp/campaigns/list": ("campaigns", "POST"),
}
SP_CAMPAIGN_MEDIA_TYPE = "application/vnd.spCampaign.v3+json"
CAMPAIGN_STATES = frozenset({"ENABLED", "PAUSED", "ARCHIVED"})
NOT_AUTHORIZED_SCOPE = "Not authorized to access scope {scope}"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PAGE_HEADERS = {
    **_NO_STORE,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


@dataclass(frozen=True)
class _Client:
    client_id: str
    secret: str
    redirect_uris: tuple[str, ...]
    name: str


@dataclass(frozen=True)
class _AuthzRequest:
    region: str
    client: _Client
    redirect_uri: str
    scope: str
    state: str | None
    challenge: str | None
    method: str
    user_id: str


@dataclass
class _Code:
    request: _AuthzRequest
    issued_at: float
    used: bool = False
    grant_id: str | None = None


@dataclass
class _Grant:
    grant_id: str
    user_id: str
    client_id: str
    scope: str
    revoked: bool = False
    consented_at: float = 0.0


@dataclass
class _Fault:
    endpoint: str
    mode: str
    region: str | None
    remaining: int | None
    latency_ms: int
    retry_after: int
    error: str | None = None


class _PageError(Exception):
    """The request cannot be sent back to the client: LwA shows an error page (HTML 400)."""


class _RedirectError(Exception):
    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(error)
        self.redirect_uri, self.state, self.error, self.description = redirect_uri, state, error, description


class _JsonError(Exception):
    def __init__(self, status: int, body: dict, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _BadInput(Exception):
    """Unreadable request (oversized, not UTF-8, malformed): 400 in the endpoint's own format."""


def _oauth_error(status: int, error: str, description: str, headers: dict | None = None) -> _JsonError:
    return _JsonError(status, {"error": error, "error_description": description}, {**_NO_STORE, **(headers or {})})


def _ads_error(status: int, code: str, details: str, headers: dict | None = None) -> _JsonError:
    return _JsonError(status, {"code": code, "details": details}, headers)


def _parse_form(text: str) -> tuple[dict[str, str], set[str]]:
    """Parse a query string or form body; return the values and the names given more than once."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=64)
    except ValueError:  # includes UnicodeDecodeError from percent-encoded non-UTF-8
        raise _BadInput("malformed parameters") from None
    values: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        if name in values:
            repeated.add(name)
        values[name] = value
    return values, repeated


def _with_query(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def _pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if not _PKCE_VALUE.fullmatch(verifier):
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        verifier = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(verifier, challenge)


class Emulator:
    """LwA + Ads API profiles for NA, EU and FE on one local port. Thread-safe; see the module doc."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.rotate_refresh_tokens = False
        self.timeout_sleep_s = 30.0
        # Amazon's 2026 grants: a refresh token ends this long after the consent (None: never),
        # and a refresh does not extend it; with ``send_refresh_token_expires_in`` the token
        # response says so (draft-ietf-oauth-refresh-token-expiration)
        self.grant_lifetime_seconds: float | None = None
        self.send_refresh_token_expires_in = False
        self.calls: list[dict] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._clients: dict[str, _Client] = {}
        self._users: dict[str, dict[str, list[dict]]] = {}
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, str] = {}  # token -> grant id
        self._access_tokens: dict[str, tuple[str, float]] = {}  # token -> (grant id, expires at)
        self._faults: list[_Fault] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self.set_user(DEFAULT_USER, DEFAULT_PROFILES)

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "Emulator":
        if self._server is None:
            self._stopping.clear()
            server = self._server = _Server(self)
            self._port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="lwa-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes requests sleeping in a latency or timeout fault
        server.shutdown()
        with self._lock:  # close kept-alive connections so nothing is served after stop()
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; still answers after stop() (the port is then closed)."""
        if self._port is None:
            raise RuntimeError("the emulator has not been started; call start() first")
        return f"http://127.0.0.1:{self._port}"

    def endpoints_env(self) -> dict[str, str]:
        env = {}
        for region in REGIONS:
            prefix = f"{self.base_url}/{region.lower()}"
            env[f"LWA_AUTHORIZE_URL_{region}"] = f"{prefix}/ap/oa"
            env[f"LWA_TOKEN_URL_{region}"] = f"{prefix}/auth/o2/token"
            env[f"ADS_API_URL_{region}"] = prefix
        return env

    # ---- configuration ------------------------------------------------------------------------
    def register_client(
        self, client_id: str, client_secret: str, redirect_uris: list[str], *, name: str | None = None
    ) -> None:
        client = _Client(client_id, client_secret, tuple(redirect_uris), name or client_id)
        with self._lock:
            self._clients[client_id] = client

    def set_user(self, user_id: str, profiles: dict[str, list[dict]]) -> None:
        by_region = {region.upper(): list(items) for region, items in profiles.items()}
        unknown = set(by_region) - set(REGIONS)
        if unknown:
            raise ValueError(f"unknown regions {sorted(unknown)}; use NA, EU, FE")
        with self._lock:
            self._users[user_id] = {r: copy.deepcopy(by_region.get(r, [])) for r in REGIONS}

    def revoke_grant(self, user_id: str, client_id: str) -> None:
        with self._lock:
            for grant in self._grants.values():
                if grant.user_id == user_id and grant.client_id == client_id:
                    grant.revoked = True

    def fault(
        self, endpoint: str, mode: str, *, region: str | None = None, times: int | None = None,
        latency_ms: int = 0, retry_after: int = 1, error: str | None = None,
    ) -> None:
        """Switch a fault on (see the module doc); ``error`` is the §5.2 code of a ``refuse``."""
        if endpoint not in FAULT_ENDPOINTS or mode not in FAULT_MODES:
            raise ValueError(f"endpoint must be one of {sorted(FAULT_ENDPOINTS)}, mode one of {sorted(FAULT_MODES)}")
        if mode == "refuse" and (endpoint != "token" or not _ERROR_CODE.fullmatch(error or "")):
            raise ValueError("refuse is a token endpoint fault and needs error, e.g. error='unauthorized_client'")
        if mode != "refuse" and error is not None:
            raise ValueError("error is only for the refuse fault")
        if region is not None and region.upper() not in REGIONS:
            raise ValueError("region must be NA, EU, FE or None")
        if times is not None and times < 1:
            raise ValueError("times must be positive or None")
        if latency_ms < 0 or retry_after < 0:
            raise ValueError("latency_ms and retry_after must not be negative")
        fault = _Fault(endpoint, mode, region and region.upper(), times, latency_ms, retry_after, error)
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget codes, tokens, grants, calls and faults; keep clients and users. Switches go back
        to their defaults so one test's settings never leak into the next."""
        with self._lock:
            for store in (self._codes, self._grants, self._refresh_tokens, self._access_tokens):
                store.clear()
            self._faults.clear()
            self.calls.clear()
            self.rotate_refresh_tokens = False
            self.timeout_sleep_s = 30.0
            self.grant_lifetime_seconds = None
            self.send_refresh_token_expires_in = False

    # ---- inspection and test helpers ----------------------------------------------------------
    def count(self, endpoint: str, region: str | None = None, grant_type: str | None = None) -> int:
        with self._lock:
            return sum(
                1 for c in self.calls
                if c["endpoint"] == endpoint
                and (region is None or c["region"] == region.upper())
                and (grant_type is None or c["grant_type"] == grant_type)
            )

    def issue_refresh_token(
        self, client_id: str, user_id: str = DEFAULT_USER, region: str = "NA", consented_at: float | None = None
    ) -> str:
        """Create a grant as if the user had consented in ``region`` (at ``consented_at``, default
        now) and return its refresh token."""
        if region.upper() not in REGIONS:
            raise ValueError("region must be NA, EU or FE")
        with self._lock:
            if client_id not in self._clients or user_id not in self._users:
                raise ValueError("unknown client or user")
            grant = self._new_grant(user_id, client_id, "advertising::campaign_management")
            if consented_at is not None:
                grant.consented_at = consented_at
            return self._issue_tokens(grant, None)["refresh_token"]

    def expire_access_token(self, token: str) -> None:
        """End an access token now, as if its hour were over (its grant stays valid)."""
        with self._lock:
            entry = self._access_tokens.get(token)
            if entry is not None:
                self._access_tokens[token] = (entry[0], min(entry[1], self.clock()))

    @staticmethod
    def campaigns_of(profile: dict) -> list[dict]:
        """The Sponsored Products campaigns an emulated profile has: one running, one paused."""
        profile_id, name = profile["profileId"], profile.get("accountInfo", {}).get("name", "")
        return [
            {"campaignId": f"{profile_id}01", "name": f"{name} - Always on", "state": "ENABLED",
             "targetingType": "AUTO", "startDate": "2026-01-01",
             "budget": {"budgetType": "DAILY", "budget": 50.0}},
            {"campaignId": f"{profile_id}02", "name": f"{name} - Seasonal", "state": "PAUSED",
             "targetingType": "MANUAL", "startDate": "2026-03-01",
             "budget": {"budgetType": "DAILY", "budget": 20.0}},
        ]

    def access_token_info(self, token: str) -> dict | None:
        with self._lock:
            entry = self._access_tokens.get(token)
            if entry is None:
                return None
            grant = self._grants[entry[0]]
            return {"user_id": grant.user_id, "client_id": grant.client_id, "expires_at": entry[1],
                    "scope": grant.scope, "revoked": grant.revoked}

    # ---- request handling (called from server threads) ----------------------------------------
    def _record(self, endpoint: str, region: str | None, grant_type: str | None, status: int) -> None:
        with self._lock:
            self.calls.append(
                {"endpoint": endpoint, "region": region, "grant_type": grant_type, "status": status, "time": self.clock()}
            )

    def _take_faults(self, endpoint: str, region: str) -> tuple[float, _Fault | None]:
        """Latency faults all fire (they stack); of the others, the oldest matching one fires."""
        delay_ms, chosen = 0, None
        with self._lock:
            for fault in list(self._faults):
                if fault.endpoint != endpoint or fault.region not in (None, region):
                    continue
                if fault.mode != "latency":
                    if chosen is not None:
                        continue
                    chosen = fault
                delay_ms += fault.latency_ms
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return delay_ms / 1000, chosen

    def _authz_request(self, region: str, params: dict[str, str], repeated: set[str], user_id: str) -> _AuthzRequest:
        with self._lock:
            client = self._clients.get(params.get("client_id", ""))
            known_user = user_id in self._users
        if client is None or "client_id" in repeated:
            raise _PageError("An unknown client_id was supplied.")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri not in client.redirect_uris or "redirect_uri" in repeated:
            raise _PageError("The redirect URI you provided has not been whitelisted for your application.")
        if not known_user:
            raise _PageError("No Amazon account matches this sign-in.")
        state = params.get("state")

        def refuse(error: str, description: str) -> _RedirectError:
            return _RedirectError(redirect_uri, state, error, description)

        if repeated:
            raise refuse("invalid_request", "A parameter was given more than once")
        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "The response_type is not supported")
        scope = params.get("scope", "")
        if not scope.split() or any(s not in SCOPES for s in scope.split()):
            raise refuse("invalid_scope", "An unknown scope was requested")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain")  # LwA's default when omitted
        if challenge is None and "code_challenge_method" in params:
            raise refuse("invalid_request", "code_challenge_method without code_challenge")
        if challenge is not None and (method not in ("plain", "S256") or not _PKCE_VALUE.fullmatch(challenge)):
            raise refuse("invalid_request", "Invalid code_challenge or code_challenge_method")
        return _AuthzRequest(region, client, redirect_uri, scope, state, challenge, method, user_id)

    def _authorize(self, h: "_Handler", region: str, query: dict, repeated: set[str]) -> None:
        request = self._authz_request(region, query, repeated - {"user"}, query.get("user", DEFAULT_USER))
        hidden = {"client_id": request.client.client_id, "scope": request.scope, "response_type": "code",
                  "redirect_uri": request.redirect_uri}
        if request.state is not None:
            hidden["state"] = request.state
        if request.challenge is not None:
            hidden.update(code_challenge=request.challenge, code_challenge_method=request.method)
        hidden["user"] = request.user_id
        page = pages.consent_page(
            action=f"/{region.lower()}/ap/oa/consent", client_name=request.client.name,
            client_id=request.client.client_id, scope=request.scope, user_id=request.user_id, hidden=hidden,
        )
        h.send_body(200, page.encode("utf-8"), "text/html; charset=utf-8", _PAGE_HEADERS)

    def _consent(self, h: "_Handler", region: str, form: dict, repeated: set[str]) -> None:
        request = self._authz_request(region, form, repeated, form.get("user", DEFAULT_USER))
        decision = form.get("decision")
        if decision == "deny":
            raise _RedirectError(request.redirect_uri, request.state, "access_denied", "The user denied the request")
        if decision != "allow":
            raise _PageError("The consent form was not completed.")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(request, self.clock())
        h.redirect(_with_query(request.redirect_uri, {"code": code, "scope": request.scope, "state": request.state}))

    def _token(self, h: "_Handler", region: str, form: dict, repeated: set[str]) -> None:
        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        if repeated:
            raise _oauth_error(400, "invalid_request", "A parameter was given more than once")
        client = self._authenticate(h.headers.get("Authorization"), form)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _oauth_error(400, "invalid_request", "Missing parameter: grant_type")
        if grant_type == "authorization_code":
            body = self._redeem_code(region, client, form)
        elif grant_type == "refresh_token":
            body = self._refresh(client, form)
        else:
            raise _oauth_error(400, "unsupported_grant_type", "The grant_type is not supported")
        h.send_json(200, body, _NO_STORE)

    def _authenticate(self, authorization: str | None, form: dict) -> _Client:
        """Client credentials from HTTP Basic or from the body (RFC 6749 §2.3.1), never both."""
        challenge = {}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization[:6].lower() == "basic ":
            challenge = {"WWW-Authenticate": 'Basic realm="lwa"'}
            try:
                raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            except ValueError:
                raise _oauth_error(401, "invalid_client", "Client authentication failed", challenge) from None
            basic_id, _, basic_secret = raw.partition(":")
            if secret is not None:
                raise _oauth_error(400, "invalid_request", "Use one client authentication method")
            if client_id is not None and client_id != unquote_plus(basic_id):
                raise _oauth_error(401, "invalid_client", "Client authentication failed", challenge)
            client_id, secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        with self._lock:
            client = self._clients.get(client_id or "")
        if client is None or secret is None or not hmac.compare_digest(secret.encode(), client.secret.encode()):
            raise _oauth_error(401, "invalid_client", "Client authentication failed", challenge)
        return client

    def _redeem_code(self, region: str, client: _Client, form: dict) -> dict:
        value = form.get("code")
        if not value:
            raise _oauth_error(400, "invalid_request", "Missing parameter: code")
        if not form.get("redirect_uri"):  # required: the authorization request always has one
            raise _oauth_error(400, "invalid_request", "Missing parameter: redirect_uri")
        with self._lock:
            code = self._codes.get(value)
            if code is None:
                raise _oauth_error(400, "invalid_grant", "The authorization code is invalid")
            if code.used:  # RFC 6749 §4.1.2: a replayed code revokes what it granted
                if code.grant_id is not None:
                    self._grants[code.grant_id].revoked = True
                raise _oauth_error(400, "invalid_grant", "The authorization code has already been used")
            if self.clock() - code.issued_at >= CODE_TTL_SECONDS:
                raise _oauth_error(400, "invalid_grant", "The authorization code has expired")
            request = code.request
            if request.client.client_id != client.client_id:
                raise _oauth_error(400, "invalid_grant", "The authorization code was issued to another client")
            if request.region != region:
                raise _oauth_error(400, "invalid_grant", "The authorization code was issued by another region")
            if form.get("redirect_uri") != request.redirect_uri:
                raise _oauth_error(400, "invalid_grant", "The redirect_uri does not match the authorization request")
            if request.challenge is not None:
                verifier = form.get("code_verifier")
                if not verifier:  # a missing parameter is a malformed request, not a bad grant
                    raise _oauth_error(400, "invalid_request", "Missing parameter: code_verifier")
                if not _pkce_matches(verifier, request.challenge, request.method):
                    raise _oauth_error(400, "invalid_grant", "The code_verifier does not match the code_challenge")
            code.used = True
            grant = self._new_grant(request.user_id, client.client_id, request.scope)
            code.grant_id = grant.grant_id
            return self._issue_tokens(grant, None)

    def _refresh(self, client: _Client, form: dict) -> dict:
        token = form.get("refresh_token")
        if not token:
            raise _oauth_error(400, "invalid_request", "Missing parameter: refresh_token")
        with self._lock:
            grant = self._grants.get(self._refresh_tokens.get(token, ""))
            if grant is None or grant.revoked:
                raise _oauth_error(400, "invalid_grant", REVOKED)
            if self.grant_lifetime_seconds is not None and self.clock() >= grant.consented_at + self.grant_lifetime_seconds:
                raise _oauth_error(400, "invalid_grant", "The refresh token has expired")
            if grant.client_id != client.client_id:
                raise _oauth_error(400, "invalid_grant", "The refresh token was issued to another client")
            if self.rotate_refresh_tokens:
                del self._refresh_tokens[token]
                return self._issue_tokens(grant, None)
            return self._issue_tokens(grant, token)

    def _new_grant(self, user_id: str, client_id: str, scope: str) -> _Grant:
        grant = _Grant(secrets.token_hex(8), user_id, client_id, scope, consented_at=self.clock())
        self._grants[grant.grant_id] = grant
        return grant

    def _issue_tokens(self, grant: _Grant, refresh_token: str | None) -> dict:
        access_token = "Atza|" + secrets.token_urlsafe(96)
        self._access_tokens[access_token] = (grant.grant_id, self.clock() + ACCESS_TOKEN_TTL_SECONDS)
        if refresh_token is None:
            refresh_token = "Atzr|" + secrets.token_urlsafe(96)
            self._refresh_tokens[refresh_token] = grant.grant_id
        answer = {"access_token": access_token, "refresh_token": refresh_token, "token_type": "bearer",
                  "expires_in": ACCESS_TOKEN_TTL_SECONDS}
        if self.send_refresh_token_expires_in and self.grant_lifetime_seconds is not None:
            answer["refresh_token_expires_in"] = int(grant.consented_at + self.grant_lifetime_seconds - self.clock())
        return answer

    def _callers_profiles(self, h: "_Handler", region: str) -> list[dict]:
        """The profiles in ``region`` of the user whose access token the request carries, after
        the checks the Ads API makes on every call: a valid bearer token (401), the client id
        header (400 without, 401 another client's)."""
        scheme, _, token = (h.headers.get("Authorization") or "").partition(" ")
        with self._lock:
            entry = self._access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            grant = self._grants.get(entry[0]) if entry else None
            if grant is None or grant.revoked or self.clock() >= entry[1]:
                raise _ads_error(401, "UNAUTHORIZED", NOT_AUTHORIZED)
            profiles = copy.deepcopy(self._users.get(grant.user_id, {}).get(region, []))
        client_id = h.headers.get("Amazon-Advertising-API-ClientId")
        if not client_id:
            raise _ads_error(400, "BAD_REQUEST", "The Amazon-Advertising-API-ClientId header is required")
        if client_id != grant.client_id:
            raise _ads_error(401, "UNAUTHORIZED", NOT_AUTHORIZED)
        return profiles

    def _profiles(self, h: "_Handler", region: str, query: dict, repeated: set[str]) -> None:
        profiles = self._callers_profiles(h, region)
        if query.get("profileTypeFilter"):
            kinds = {k.strip().lower() for k in query["profileTypeFilter"].split(",") if k.strip()}
            if not kinds <= PROFILE_TYPES:
                raise _ads_error(400, "INVALID_ARGUMENT", "profileTypeFilter must list seller, vendor or agency")
            profiles = [p for p in profiles if p.get("accountInfo", {}).get("type") in kinds]
        if query.get("validPaymentMethodFilter") in ("true", "false"):
            wanted = query["validPaymentMethodFilter"] == "true"
            profiles = [p for p in profiles if p.get("accountInfo", {}).get("validPaymentMethod") is wanted]
        # accessLevel and apiProgram are accepted: every emulated profile grants full access
        h.send_json(200, profiles)

    def _campaigns(self, h: "_Handler", region: str, body: object, repeated: set[str]) -> None:
        """``POST /sp/campaigns/list`` with the headers the Ads API checks: a valid bearer token,
        the client id it was issued to, and a scope that is one of its user's profiles in this
        region. Filters: ``stateFilter.include``; ``maxResults``/``nextToken`` are accepted (one
        page holds everything)."""
        profiles = self._callers_profiles(h, region)
        scope = (h.headers.get("Amazon-Advertising-API-Scope") or "").strip()
        if not scope:
            raise _ads_error(400, "BAD_REQUEST", "The Amazon-Advertising-API-Scope header is required")
        profile = next((p for p in profiles if str(p["profileId"]) == scope), None)
        if profile is None:  # not a number, another user's profile, or one of another region
            raise _ads_error(401, "UNAUTHORIZED", NOT_AUTHORIZED_SCOPE.format(scope=scope[:32]))
        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != SP_CAMPAIGN_MEDIA_TYPE.lower():  # media types are case-insensitive
            raise _ads_error(415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Type must be {SP_CAMPAIGN_MEDIA_TYPE}")
        if not isinstance(body, dict):
            raise _ads_error(400, "BAD_REQUEST", "The request body must be a JSON object")
        campaigns = self.campaigns_of(profile)
        states = (body.get("stateFilter") or {}).get("include") if isinstance(body.get("stateFilter"), dict) else None
        if states is not None:
            if not isinstance(states, list) or not {str(s).upper() for s in states} <= CAMPAIGN_STATES:
                raise _ads_error(400, "BAD_REQUEST", "stateFilter.include must list ENABLED, PAUSED or ARCHIVED")
            campaigns = [c for c in campaigns if c["state"] in {str(s).upper() for s in states}]
        h.send_body(200, json.dumps({"campaigns": campaigns, "totalResults": len(campaigns)}).encode("utf-8"),
                    SP_CAMPAIGN_MEDIA_TYPE)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are normal here
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Server"
    sys_version = ""
    timeout = 60  # idle keep-alive connections give their thread back eventually
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms delayed ACKs

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - never log (tokens in URLs/bodies)
        pass

    def setup(self) -> None:
        super().setup()
        with self.emulator._lock:
            self.emulator._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.emulator._lock:
                self.emulator._connections.discard(self.connection)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._record(code)  # before the client can see the answer, so tests can count right after it
        late, self._late = getattr(self, "_late", 0.0), 0.0
        if late:  # a "late" fault: processed (and recorded), answered after the client gave up
            self.emulator._stopping.wait(late)
        super().send_response(code, message)

    def _record(self, status: int) -> None:
        call, self._call = getattr(self, "_call", None), None
        if call is not None:
            self.emulator._record(*call, status)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ---- responses ----------------------------------------------------------------------------
    def send_body(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: object, headers: dict | None = None) -> None:
        self.send_body(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def redirect(self, location: str) -> None:
        self.send_body(302, b"", "text/html; charset=utf-8", {"Location": location, **_NO_STORE})

    def _reset_connection(self) -> None:
        """Abort with a TCP RST: linger 0, then close before anything is written."""
        self._record(0)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # drop the makefile reference so close() closes the socket now
        self.connection.close()
        self.rfile, self.wfile = io.BytesIO(), io.BytesIO()  # the base class still flushes/closes these
        self.close_connection = True

    # ---- dispatch -----------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _BadInput("chunked bodies are not supported")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadInput("bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BadInput("body too large")
        return self.rfile.read(length)

    def _read_form(self) -> tuple[dict[str, str], set[str]]:
        raw = self._read_body()
        try:
            return _parse_form(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _BadInput("body is not UTF-8") from None

    def _read_json(self) -> object:
        """A JSON body (the Ads API's v3 endpoints); an empty body is an empty object."""
        raw = self._read_body()
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except ValueError:  # includes UnicodeDecodeError
            raise _BadInput("body is not JSON") from None

    def _dispatch(self) -> None:
        emu, url = self.emulator, urlsplit(self.path)
        route = _ROUTE.fullmatch(url.path)
        endpoint, method = _ROUTES[route.group(2)] if route else ("other", None)
        region = route.group(1).upper() if route else None
        self._call: tuple | None = (endpoint, region, None)
        try:
            try:
                if route is None:
                    raise _ads_error(404, "NOT_FOUND", "Not found")
                if self.command != method:
                    self.close_connection = True  # any body is left unread
                    raise _ads_error(405, "METHOD_NOT_ALLOWED", "Method not allowed", {"Allow": method})
                if endpoint == "campaigns":
                    params, repeated = self._read_json(), set()
                else:
                    params, repeated = self._read_form() if method == "POST" else _parse_form(url.query)
            except _BadInput as exc:
                self.close_connection = True
                if endpoint in ("authorize", "consent"):
                    raise _PageError("The request could not be read.") from exc
                if endpoint == "token":
                    raise _oauth_error(400, "invalid_request", "The request could not be read") from exc
                raise _ads_error(400, "BAD_REQUEST", "The request could not be read") from exc
            if endpoint == "token":
                self._call = (endpoint, region, params.get("grant_type"))
            if not self._apply_faults(endpoint, region):
                return
            getattr(emu, "_" + endpoint)(self, region, params, repeated)
        except _PageError as exc:
            self.send_body(400, pages.error_page(str(exc)).encode("utf-8"), "text/html; charset=utf-8", _PAGE_HEADERS)
        except _RedirectError as exc:
            self.redirect(_with_query(exc.redirect_uri, {
                "error": exc.error, "error_description": exc.description, "state": exc.state}))
        except _JsonError as exc:
            self.send_json(exc.status, exc.body, exc.headers)
        except OSError:
            self.close_connection = True  # the client went away
        except Exception:  # a bug in the emulator: answer like a server would, keep serving
            self.close_connection = True
            self.send_json(500, {"code": "INTERNAL_ERROR", "details": "Internal error"})
        finally:
            self._record(0)  # nothing was answered: the client went away

    def _apply_faults(self, endpoint: str, region: str) -> bool:
        """Serve the active fault, if any; return whether normal processing should follow."""
        emu = self.emulator
        delay, fault = emu._take_faults(endpoint, region)
        if delay:
            emu._stopping.wait(delay)
        if fault is None or fault.mode == "latency":
            return True
        if fault.mode == "late":
            self._late = emu.timeout_sleep_s
            return True
        if fault.mode == "refuse":
            status = 401 if fault.error == "invalid_client" else 400
            raise _oauth_error(status, fault.error or "invalid_request", "The request was refused")
        if fault.mode == "429":
            raise _ads_error(429, "THROTTLED", "Request was throttled. Retry after the time in Retry-After.",
                             {"Retry-After": str(fault.retry_after)})
        if fault.mode == "timeout":
            emu._stopping.wait(emu.timeout_sleep_s)
        if fault.mode in ("5xx", "timeout"):
            raise _ads_error(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable.")
        self._reset_connection()
        return False
