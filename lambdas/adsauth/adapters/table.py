"""DynamoDB: advertisers, profiles, invitations and OAuth states in one table (see ``schema``)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

from boto3.dynamodb.conditions import Key

from adsauth import schema
from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    Invitation,
    PendingAuthorization,
    Profile,
)
from adsauth.regions import Region

RETENTION_AFTER_EXPIRY = 24 * 3600  # TTL clean-up margin; expiry itself is checked in code


def _num(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry_shard(advertiser_id: str) -> str:
    return f"DUE#{sum(advertiser_id.encode()) % schema.EXPIRY_SHARDS}"


class DynamoStore:
    def __init__(self, *, table: Any) -> None:
        self.table = table
        self.client = table.meta.client

    # --- invitations ---------------------------------------------------------------------------
    def create_invitation(self, invitation: Invitation, advertiser: Advertiser | None) -> None:
        """Store an invitation; with ``advertiser``, create that advertiser in the same
        transaction, without one (a re-invitation) require the advertiser to exist."""
        invitation_item = {
            **schema.invitation_key(invitation.token_hash),
            "type": "invitation",
            "advertiser_id": invitation.advertiser_id,
            "region": invitation.region.value,
            "created_at": _num(invitation.created_at),
            "expires_at": _num(invitation.expires_at),
            schema.TTL_ATTRIBUTE: int(invitation.expires_at + RETENTION_AFTER_EXPIRY),
        }
        condition = "attribute_not_exists(pk)"
        items: list[dict] = [{"Put": {"TableName": self.table.name, "Item": invitation_item, "ConditionExpression": condition}}]
        if advertiser is None:
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table.name,
                        "Key": schema.advertiser_key(invitation.advertiser_id),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            )
        else:
            advertiser_item = {
                **schema.advertiser_key(advertiser.advertiser_id),
                "type": "advertiser",
                schema.KIND_INDEX_PK: schema.ADVERTISER_KIND,
                schema.KIND_INDEX_SK: advertiser.advertiser_id,
                "advertiser_id": advertiser.advertiser_id,
                "name": advertiser.name,
                "email": advertiser.email,
                "region": advertiser.region.value,
                "status": advertiser.status.value,
                "status_reason": "",
                "created_at": _num(advertiser.created_at),
                "updated_at": _num(advertiser.updated_at),
                "pending_regions": [],
            }
            items.append({"Put": {"TableName": self.table.name, "Item": advertiser_item, "ConditionExpression": condition}})
        # the resource's client serializes Python values itself
        self.client.transact_write_items(TransactItems=items)

    def get_invitation(self, token_hash: str) -> Invitation | None:
        item = self.table.get_item(Key=schema.invitation_key(token_hash), ConsistentRead=True).get("Item")
        if not item:
            return None
        return Invitation(
            token_hash=token_hash,
            advertiser_id=item["advertiser_id"],
            region=Region(item["region"]),
            created_at=float(item["created_at"]),
            expires_at=float(item["expires_at"]),
            completed_at=_float(item.get("completed_at")),
        )

    # --- advertisers ---------------------------------------------------------------------------
    def get_advertiser(self, advertiser_id: str) -> Advertiser | None:
        item = self.table.get_item(Key=schema.advertiser_key(advertiser_id), ConsistentRead=True).get("Item")
        if not item:
            return None
        return Advertiser(
            advertiser_id=item["advertiser_id"],
            name=item["name"],
            email=item["email"],
            region=Region(item["region"]),
            status=AdvertiserStatus(item["status"]),
            created_at=float(item["created_at"]),
            updated_at=float(item["updated_at"]),
            status_reason=item.get("status_reason", ""),
            token_expires_at=_float(item.get("token_expires_at")),
            connected_at=_float(item.get("connected_at")),
            pending_regions=tuple(Region(r) for r in item.get("pending_regions", [])),
        )

    def set_status(
        self,
        advertiser_id: str,
        status: AdvertiserStatus,
        reason: str,
        now: float,
        *,
        unless: AdvertiserStatus | None = None,
    ) -> bool:
        """Set the status; with ``unless``, leave an advertiser in that status untouched."""
        condition = "attribute_exists(pk)"
        values = {":s": status.value, ":r": reason, ":now": _num(now)}
        if unless is not None:
            condition += " AND #s <> :unless"
            values[":unless"] = unless.value
        try:
            self.table.update_item(
                Key=schema.advertiser_key(advertiser_id),
                UpdateExpression="SET #s = :s, status_reason = :r, updated_at = :now",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            if unless is None:
                raise
            return False
        return True

    def record_connection(
        self,
        *,
        advertiser_id: str,
        invitation_hash: str | None,
        profiles: dict[Region, list[Profile]],
        pending_regions: Iterable[Region],
        token_expires_at: float,
        now: float,
    ) -> None:
        self._merge_profiles(advertiser_id, profiles, now)
        self.table.update_item(
            Key=schema.advertiser_key(advertiser_id),
            UpdateExpression=(
                "SET #s = :s, status_reason = :empty, updated_at = :now, connected_at = :now, "
                "token_expires_at = :exp, pending_regions = :pending, #dpk = :dpk, #dsk = :dsk"
            ),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={
                "#s": "status",
                "#dpk": schema.EXPIRY_INDEX_PK,
                "#dsk": schema.EXPIRY_INDEX_SK,
            },
            ExpressionAttributeValues={
                ":s": AdvertiserStatus.CONNECTED.value,
                ":empty": "",
                ":now": _num(now),
                ":exp": _num(token_expires_at),
                ":pending": sorted(r.value for r in pending_regions),
                ":dpk": expiry_shard(advertiser_id),
                ":dsk": iso(token_expires_at),
            },
        )
        if invitation_hash:
            try:
                self.table.update_item(
                    Key=schema.invitation_key(invitation_hash),
                    UpdateExpression="SET completed_at = :now",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(completed_at)",
                    ExpressionAttributeValues={":now": _num(now)},
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                pass  # completed by a concurrent flow of the same invitation: one completion is enough

    def _merge_profiles(self, advertiser_id: str, found: dict[Region, list[Profile]], now: float) -> None:
        """Add new profiles, refresh known ones, mark vanished ones removed (never delete)."""
        known = {(p.region, p.profile_id): p for p in self.list_profiles(advertiser_id)}
        with self.table.batch_writer() as batch:
            for region, profiles in found.items():
                seen = set()
                for profile in profiles:
                    seen.add(profile.profile_id)
                    item = self._profile_item(advertiser_id, profile, "active", None)
                    batch.put_item(Item={**item, "seen_at": _num(now)})
                for (known_region, profile_id), old in known.items():
                    if known_region == region and profile_id not in seen and old.status != "removed":
                        batch.put_item(Item=self._profile_item(advertiser_id, old, "removed", now))

    def _profile_item(self, advertiser_id: str, p: Profile, status: str, removed_at: float | None) -> dict:
        item = {
            **schema.profile_key(advertiser_id, p.region.value, p.profile_id),
            "type": "profile",
            schema.PROFILE_INDEX_PK: f"PROFILE#{p.profile_id}",
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
            item["daily_budget"] = _num(p.daily_budget)
        if p.valid_payment_method is not None:
            item["valid_payment_method"] = p.valid_payment_method
        if removed_at is not None:
            item["removed_at"] = _num(removed_at)
        return item

    def list_profiles(self, advertiser_id: str) -> list[Profile]:
        items = self._query(
            KeyConditionExpression=Key(schema.PK).eq(f"ADV#{advertiser_id}")
            & Key(schema.SK).begins_with("PROFILE#")
        )
        return [self._profile(item) for item in items]

    def advertiser_by_profile(self, profile_id: int) -> str | None:
        items = self._query(
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
            daily_budget=_float(item.get("daily_budget")),
            valid_payment_method=item.get("valid_payment_method"),
            status=item.get("status", "active"),
            removed_at=_float(item.get("removed_at")),
        )

    # --- OAuth state ---------------------------------------------------------------------------
    def put_state(self, pending: PendingAuthorization, expires_at: float) -> None:
        self.table.put_item(
            Item={
                **schema.state_key(pending.state_hash),
                "type": "state",
                "advertiser_id": pending.advertiser_id,
                "invitation_hash": pending.invitation_hash,
                "region": pending.region.value,
                "code_challenge": pending.code_challenge,
                "created_at": _num(pending.created_at),
                schema.TTL_ATTRIBUTE: int(expires_at + RETENTION_AFTER_EXPIRY),
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_state(self, state_hash: str) -> PendingAuthorization | None:
        item = self.table.get_item(Key=schema.state_key(state_hash), ConsistentRead=True).get("Item")
        if not item:
            return None
        return PendingAuthorization(
            state_hash=state_hash,
            advertiser_id=item["advertiser_id"],
            invitation_hash=item["invitation_hash"],
            region=Region(item["region"]),
            code_challenge=item["code_challenge"],
            created_at=float(item["created_at"]),
        )

    def consume_state(self, state_hash: str, now: float) -> bool:
        try:
            self.table.update_item(
                Key=schema.state_key(state_hash),
                UpdateExpression="SET consumed_at = :now",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(consumed_at)",
                ExpressionAttributeValues={":now": _num(now)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- helpers -------------------------------------------------------------------------------
    def _query(self, **kwargs: Any) -> list[dict]:
        items: list[dict] = []
        while True:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
