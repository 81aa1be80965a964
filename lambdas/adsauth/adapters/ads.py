"""Amazon Ads API: the profiles listing, one regional host at a time."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Mapping

from adsauth.adapters.http import IDEMPOTENT, HttpClient, HttpUnavailable
from adsauth.errors import AdsApiError, AdsApiUnauthorized, AdsApiUnavailable
from adsauth.models import Profile
from adsauth.regions import Endpoints, Region

if TYPE_CHECKING:
    from adsauth.deadline import Deadline


class AdsApiHttpClient:
    def __init__(self, *, http: HttpClient, endpoints: Mapping[Region, Endpoints], client_id: str,
                 deadline: Deadline | None = None) -> None:
        self.http = http
        self.endpoints = endpoints
        self.client_id = client_id
        self.deadline = deadline

    def within(self, deadline: Deadline | None) -> "AdsApiHttpClient":
        """This client with every call bounded by ``deadline``: a region whose listing cannot
        finish in time fails (and is pending) instead of holding the callback up."""
        bound = copy.copy(self)
        bound.deadline = deadline
        return bound

    def list_profiles(self, region: Region, access_token: str) -> list[Profile]:
        try:
            response = self.http.request(
                "GET",
                f"{self.endpoints[region].ads_api_url}/v2/profiles",
                headers={
                    "Authorization": f"Bearer {access_token}",
                    "Amazon-Advertising-API-ClientId": self.client_id,
                    "Accept": "application/json",
                },
                policy=IDEMPOTENT,
                deadline=self.deadline,
            )
        except HttpUnavailable:
            raise AdsApiUnavailable() from None
        if response.status == 401:
            raise AdsApiUnauthorized()
        if response.status != 200:
            raise AdsApiError()
        try:
            payload = response.json()
        except ValueError:
            raise AdsApiError() from None
        if not isinstance(payload, list):
            raise AdsApiError()
        return [parse_profile(item, region) for item in payload]


def parse_profile(item: object, region: Region) -> Profile:
    if not isinstance(item, dict):
        raise AdsApiError()
    info = item.get("accountInfo") or {}
    profile_id = item.get("profileId")
    if not isinstance(profile_id, int) or isinstance(profile_id, bool) or not isinstance(info, dict):
        raise AdsApiError()

    def text(source: dict, key: str) -> str:
        value = source.get(key)
        return str(value)[:256] if value is not None else ""

    budget = item.get("dailyBudget")
    payment = info.get("validPaymentMethod")
    return Profile(
        profile_id=profile_id,
        region=region,
        country_code=text(item, "countryCode"),
        currency_code=text(item, "currencyCode"),
        timezone=text(item, "timezone"),
        marketplace_id=text(info, "marketplaceStringId"),
        account_id=text(info, "id"),
        account_type=text(info, "type"),
        account_name=text(info, "name"),
        daily_budget=float(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None,
        valid_payment_method=payment if isinstance(payment, bool) else None,
    )
