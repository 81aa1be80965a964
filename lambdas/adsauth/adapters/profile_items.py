"""Profiles: an advertiser's advertising profiles per region, and the advertiser of a profile."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from boto3.dynamodb.conditions import Key

from adsauth import events, schema
from adsauth.adapters.dynamo import num, opt_float
from adsauth.models import Profile
from adsauth.regions import Region

PROFILE_CHANGES_PER_TRANSACTION = 99  # and the event: DynamoDB takes 100 items per transaction
# profile items sit in the byKind index too (kind_sk = <advertiser>#<region>#<profile id>): the ops
# listing counts every advertiser's profiles with one paginated query, not one per advertiser
PROFILE_KIND = "PROFILE"


@dataclass(frozen=True)
class ProfilesDiff:
    added: tuple[tuple[str, int], ...] = ()
    removed: tuple[tuple[str, int], ...] = ()


class ProfileItems:
    def merge_profiles(self, advertiser_id: str, found: dict[Region, list[Profile]], now: float) -> ProfilesDiff:
        """Add new profiles, refresh known ones, mark vanished ones removed (never delete).
        The changes and their ``ProfilesChanged`` event are written in transactions; profiles
        that are only seen again go in batches."""
        known = {(p.region, p.profile_id): p for p in self.list_profiles(advertiser_id)}
        changed: list[dict] = []
        seen_again: list[dict] = []
        added: list[tuple[str, int]] = []
        removed: list[tuple[str, int]] = []
        for region, profiles in found.items():
            seen = set()
            for profile in profiles:
                if profile.profile_id in seen:
                    continue  # listed twice: one item (a transaction refuses two writes of one key)
                seen.add(profile.profile_id)
                item = {**self._profile_item(advertiser_id, profile, "active", None), "seen_at": num(now)}
                old = known.get((region, profile.profile_id))
                if old is None or old.status == "removed":
                    added.append((region.value, profile.profile_id))
                    changed.append(item)
                else:
                    seen_again.append(item)
            for (known_region, profile_id), old in known.items():
                if known_region == region and profile_id not in seen and old.status != "removed":
                    removed.append((region.value, profile_id))
                    changed.append(self._profile_item(advertiser_id, old, "removed", now))
        diff = ProfilesDiff(tuple(added), tuple(removed))
        # each transaction carries the event of its own changes: announced exactly when stored
        step = PROFILE_CHANGES_PER_TRANSACTION
        for start in range(0, len(changed), step):
            chunk = changed[start : start + step]
            keys = {(c["region"], int(c["profile_id"])) for c in chunk}
            event = events.profiles_changed(
                advertiser_id, added=[a for a in added if a in keys], removed=[r for r in removed if r in keys], now=now
            )
            self.transact([{"Put": {"TableName": self.table.name, "Item": i}} for i in chunk] + self.event_items([event]))
        if seen_again:
            with self.table.batch_writer() as batch:
                for item in seen_again:
                    batch.put_item(Item=item)
        return diff

    def _profile_item(self, advertiser_id: str, p: Profile, status: str, removed_at: float | None) -> dict:
        item = {
            **schema.profile_key(advertiser_id, p.region.value, p.profile_id),
            "type": "profile",
            schema.PROFILE_INDEX_PK: f"PROFILE#{p.profile_id}",
            schema.KIND_INDEX_PK: PROFILE_KIND,
            schema.KIND_INDEX_SK: f"{advertiser_id}#{p.region.value}#{p.profile_id}",
            "advertiser_id": advertiser_id,
            "profile_id": p.profile_id,
            "region": p.region.value,
            "country_code": p.country_code,
            "currency_code": p.currency_code,
            "timezone": p.timezone,
            "marketplace_id": p.marketplace_id,
            "account_id": p.account_id,
            "account_type": p.account_type,
            "account_name": p.account_name,
            "status": status,
        }
        if p.daily_budget is not None:
            item["daily_budget"] = num(p.daily_budget)
        if p.valid_payment_method is not None:
            item["valid_payment_method"] = p.valid_payment_method
        if removed_at is not None:
            item["removed_at"] = num(removed_at)
        return item

    def list_profiles(self, advertiser_id: str) -> list[Profile]:
        items = self.query_all(
            KeyConditionExpression=Key(schema.PK).eq(f"ADV#{advertiser_id}")
            & Key(schema.SK).begins_with("PROFILE#")
        )
        return [self._profile(item) for item in items]

    def active_profile_counts(self, on_page: Callable[[int], None] | None = None) -> dict[str, dict[str, int]]:
        """Active profiles per advertiser and region, ``{advertiser_id: {"NA": 2, …}}``, read from
        the ``byKind`` index page by page (``on_page``: profiles read so far). A profile item
        written before it carried the index attributes is counted once it is listed again (the
        refresher lists a connected advertiser's profiles daily)."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: {r.value: 0 for r in Region})
        kwargs = {
            "IndexName": schema.KIND_INDEX,
            "KeyConditionExpression": Key(schema.KIND_INDEX_PK).eq(PROFILE_KIND),
            "ProjectionExpression": "advertiser_id, #r, #s",
            "ExpressionAttributeNames": {"#r": "region", "#s": "status"},
        }
        read = 0
        while True:
            page = self.table.query(**kwargs)
            for item in page.get("Items", []):
                mine = counts[item["advertiser_id"]]  # listed, even with no active profile left
                if item.get("status", "active") == "active":
                    mine[item["region"]] += 1
            read += len(page.get("Items", []))
            if on_page is not None:
                on_page(read)
            if "LastEvaluatedKey" not in page:
                return dict(counts)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def advertiser_by_profile(self, profile_id: int) -> str | None:
        items = self.query_all(
            IndexName=schema.PROFILE_INDEX,
            KeyConditionExpression=Key(schema.PROFILE_INDEX_PK).eq(f"PROFILE#{profile_id}"),
        )
        # Several grants can reach one profile (an agency login and the seller's own): the
        # advertiser that saw it most recently wins, active ones before removed ones.
        if not items:
            return None
        best = max(items, key=lambda i: (i.get("status") == "active", i.get("seen_at", 0)))
        return best["advertiser_id"]

    @staticmethod
    def _profile(item: dict) -> Profile:
        return Profile(
            profile_id=int(item["profile_id"]),
            region=Region(item["region"]),
            country_code=item.get("country_code", ""),
            currency_code=item.get("currency_code", ""),
            timezone=item.get("timezone", ""),
            marketplace_id=item.get("marketplace_id", ""),
            account_id=item.get("account_id", ""),
            account_type=item.get("account_type", ""),
            account_name=item.get("account_name", ""),
            daily_budget=opt_float(item.get("daily_budget")),
            valid_payment_method=item.get("valid_payment_method"),
            status=item.get("status", "active"),
            removed_at=opt_float(item.get("removed_at")),
        )
