"""Login with Amazon token endpoint: code exchange and refresh, per region."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from adsauth.adapters.http import AT_MOST_ONCE, IDEMPOTENT, HttpClient, HttpUnavailable, RetryPolicy
from adsauth.errors import (
    ClientInvalid,
    ClientMisconfigured,
    ClientUnauthorized,
    GrantInvalid,
    GrantTypeUnsupported,
    LwaError,
    LwaOutOfTime,
    LwaRefused,
    LwaUnavailable,
    RequestRejected,
    ScopeInvalid,
)
from adsauth.models import TokenSet
from adsauth.regions import Endpoints, Region

if TYPE_CHECKING:
    from adsauth.deadline import Deadline

# RFC 6749 §5.2 codes, each to what it means for us (see ``errors``)
REFUSALS: dict[str, type[LwaError]] = {
    "invalid_grant": GrantInvalid,  # this advertiser's code or grant
    "invalid_request": RequestRejected,  # this one request
    "invalid_client": ClientInvalid,  # the platform: client, grant type, scope
    "unauthorized_client": ClientUnauthorized,
    "unsupported_grant_type": GrantTypeUnsupported,
    "invalid_scope": ScopeInvalid,
}
OUTAGES = frozenset({"server_error", "temporarily_unavailable"})  # §4.1.2.1 codes some servers send here


def token_error(status: int, error: object) -> LwaError:
    """The error for a non-200 token response: a refusal (never retried) or an outage."""
    if isinstance(error, str) and error in REFUSALS:
        return REFUSALS[error]()
    if status == 401:
        return ClientInvalid()
    if not isinstance(error, str) or error in OUTAGES or status >= 500 or status == 429 or status < 400:
        return LwaUnavailable()  # no readable §5.2 answer (a proxy's page, a 5xx): not a refusal
    return LwaRefused(error)  # a 4xx naming a code we do not know: LwA refused, it did not fail


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = field(repr=False)


class LwaHttpClient:
    def __init__(
        self,
        *,
        http: HttpClient,
        endpoints: Mapping[Region, Endpoints],
        credentials: Callable[[], ClientCredentials],
        clock: Callable[[], float],
        deadline: Deadline | None = None,
    ) -> None:
        self.http = http
        self.endpoints = endpoints
        self.credentials = credentials
        self.clock = clock
        self.deadline = deadline

    def within(self, deadline: Deadline | None) -> "LwaHttpClient":
        """A copy with every call bounded by ``deadline`` (the same connection pool)."""
        bound = copy.copy(self)
        bound.deadline = deadline
        return bound

    def exchange_code(
        self, region: Region, code: str, redirect_uri: str, code_verifier: str | None
    ) -> TokenSet:
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            fields["code_verifier"] = code_verifier
        # a code is never sent twice once it may have reached LwA (RFC 6749 §4.1.2)
        return self._token_request(region, fields, previous_refresh_token=None, policy=AT_MOST_ONCE)

    def refresh(self, region: Region, refresh_token: str) -> TokenSet:
        fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_request(region, fields, previous_refresh_token=refresh_token, policy=IDEMPOTENT)

    def _token_request(
        self, region: Region, fields: dict[str, str], previous_refresh_token: str | None, policy: RetryPolicy
    ) -> TokenSet:
        client = self.credentials()
        fields = {**fields, "client_id": client.client_id, "client_secret": client.client_secret}
        sent_at = self.clock()
        try:
            response = self.http.request(
                "POST",
                self.endpoints[region].token_url,
                fields=fields,
                headers={"Accept": "application/json"},
                policy=policy,
                deadline=self.deadline,
            )
        except HttpUnavailable as exc:
            raise (LwaOutOfTime() if exc.reason == "deadline" else LwaUnavailable()) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status != 200:
            raise token_error(response.status, payload.get("error") if isinstance(payload, dict) else None)
        if not isinstance(payload, dict):
            raise LwaUnavailable("Login with Amazon sent an unreadable token response.")
        access = payload.get("access_token")
        refresh = payload.get("refresh_token") or previous_refresh_token
        expires_in = payload.get("expires_in")
        if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
            raise LwaUnavailable("Login with Amazon sent an incomplete token response.")
        if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in <= 0:
            expires_in = 3600
        grant_left = payload.get("refresh_token_expires_in")  # draft-ietf-oauth-refresh-token-expiration
        if not isinstance(grant_left, (int, float)) or isinstance(grant_left, bool) or grant_left <= 0:
            grant_left = None
        # measured from before the request: never believe a token lives longer than it does
        return TokenSet(access_token=access, refresh_token=refresh, expires_at=sent_at + expires_in,
                        refresh_token_expires_in=grant_left)


def parse_client_secret(value: object, expected_client_id: str) -> ClientCredentials:
    """Validate the Secrets Manager value ``{"client_id": ..., "client_secret": ...}``."""
    if not isinstance(value, dict):
        raise ClientMisconfigured()
    client_id, secret = value.get("client_id"), value.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(secret, str) or not secret.strip():
        raise ClientMisconfigured()
    if client_id != expected_client_id:
        raise ClientMisconfigured(
            "The client_id in the LwA client secret differs from the configured client id."
        )
    return ClientCredentials(client_id=client_id, client_secret=secret)
