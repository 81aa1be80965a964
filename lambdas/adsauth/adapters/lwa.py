"""Login with Amazon token endpoint: code exchange and refresh, per region."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from adsauth.adapters.http import HttpClient, HttpUnavailable
from adsauth.errors import (
    ClientInvalid,
    ClientMisconfigured,
    GrantInvalid,
    LwaOAuthError,
    LwaUnavailable,
)
from adsauth.models import TokenSet
from adsauth.regions import Endpoints, Region


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
    ) -> None:
        self.http = http
        self.endpoints = endpoints
        self.credentials = credentials
        self.clock = clock

    def exchange_code(
        self, region: Region, code: str, redirect_uri: str, code_verifier: str | None
    ) -> TokenSet:
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            fields["code_verifier"] = code_verifier
        return self._token_request(region, fields, previous_refresh_token=None)

    def refresh(self, region: Region, refresh_token: str) -> TokenSet:
        fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_request(region, fields, previous_refresh_token=refresh_token)

    def _token_request(
        self, region: Region, fields: dict[str, str], previous_refresh_token: str | None
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
            )
        except HttpUnavailable:
            raise LwaUnavailable() from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status != 200:
            error = payload.get("error") if isinstance(payload, dict) else None
            if error == "invalid_grant":
                raise GrantInvalid()
            if error == "invalid_client" or response.status == 401:
                raise ClientInvalid()
            if response.status in (400, 403) and isinstance(error, str):
                raise LwaOAuthError(error)
            raise LwaUnavailable()
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
