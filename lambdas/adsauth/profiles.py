"""Listing an advertiser's profiles in every region at once (onboarding and the refresher)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from adsauth.errors import AdsApiError
from adsauth.models import Profile
from adsauth.ports import ProfilesClient
from adsauth.regions import Region


def list_in_regions(
    ads: ProfilesClient, regions: Iterable[Region], access_token: str
) -> tuple[dict[Region, list[Profile]], list[Region]]:
    """The profiles found per region, and the regions that failed (pending, asked again later)."""
    regions = list(regions)

    def one(region: Region) -> list[Profile] | None:
        try:
            return ads.list_profiles(region, access_token)
        except AdsApiError:
            return None

    with ThreadPoolExecutor(max_workers=len(regions), thread_name_prefix="profiles") as pool:
        results = list(pool.map(one, regions))
    found = {r: p for r, p in zip(regions, results) if p is not None}
    pending = [r for r, p in zip(regions, results) if p is None]
    return found, pending
