"""What every part of the DynamoDB store shares: number conversion, times as index keys, paged
queries, transactions that say which condition failed, and the advertiser item's shape."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from adsauth import schema
from adsauth.models import Advertiser, AdvertiserStatus, DueSchedule
from adsauth.regions import Region

RETENTION_AFTER_EXPIRY = 24 * 3600  # TTL clean-up margin; expiry itself is checked in code
DUE_NAMES = {"#dpk": schema.EXPIRY_INDEX_PK, "#dsk": schema.EXPIRY_INDEX_SK}
CONNECTED = AdvertiserStatus.CONNECTED.value
TRANSACTION_ATTEMPTS = 3  # TransactionConflict: another transaction touched an item meanwhile


def num(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))


def opt_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> float:
    """Epoch seconds of an ``iso`` time (a due index key)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def iso_us(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expiry_shard(advertiser_id: str) -> str:
    return f"DUE#{sum(advertiser_id.encode()) % schema.EXPIRY_SHARDS}"


def generation_condition(generation: int, name: str = "generation") -> str:
    """``generation = :gen``; items written before generations existed count as generation 1."""
    return f"(attribute_not_exists({name}) OR {name} = :gen)" if generation == 1 else f"{name} = :gen"


class Conflict(Exception):
    """A transaction's condition failed; ``failed`` holds the indexes of the items whose did."""

    def __init__(self, failed: list[int]) -> None:
        super().__init__(f"condition failed on item(s) {failed}")
        self.failed = failed


class DynamoBase:
    def __init__(self, *, table: Any, schedule: DueSchedule | None = None, events_enabled: bool = False) -> None:
        self.table = table
        self.client = table.meta.client
        self.schedule = schedule or DueSchedule()
        self.events_enabled = events_enabled  # lifecycle events go to the outbox (see adapters.outbox)

    def transact(self, items: list[dict]) -> None:
        """One transaction; ``Conflict`` names the items whose condition failed. A conflict with
        a concurrent transaction (no condition failed) is tried again."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=items)  # the resource's client serializes
                return
            except self.client.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or []
                failed = [i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"]
                if failed:
                    raise Conflict(failed) from None
                if attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def transition(self, items: list[dict]) -> bool:
        """A lifecycle transition: True when it happened, False (nothing changed) when one of its
        conditions did not hold."""
        try:
            self.transact(items)
        except Conflict:
            return False
        return True

    def update(self, key: dict, expression: str, condition: str | None, values: dict, names: dict | None = None) -> dict:
        """An ``Update`` transaction item on ``key``."""
        item: dict[str, Any] = {"TableName": self.table.name, "Key": key, "UpdateExpression": expression}
        if condition:
            item["ConditionExpression"] = condition
        if names:
            item["ExpressionAttributeNames"] = names
        if values:
            item["ExpressionAttributeValues"] = values
        return {"Update": item}

    def query_all(self, **kwargs: Any) -> list[dict]:
        items: list[dict] = []
        while True:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- the advertiser item ---------------------------------------------------------------------
    def get_advertiser(self, advertiser_id: str) -> Advertiser | None:
        item = self.table.get_item(Key=schema.advertiser_key(advertiser_id), ConsistentRead=True).get("Item")
        return advertiser_from_item(item) if item else None

    def list_advertisers(self) -> list[Advertiser]:
        """Every advertiser, by id (the ``byKind`` index: no scan)."""
        from boto3.dynamodb.conditions import Key

        items = self.query_all(
            IndexName=schema.KIND_INDEX, KeyConditionExpression=Key(schema.KIND_INDEX_PK).eq(schema.ADVERTISER_KIND)
        )
        return [advertiser_from_item(item) for item in items]


def advertiser_item(advertiser: Advertiser) -> dict:
    item = {
        **schema.advertiser_key(advertiser.advertiser_id),
        "type": "advertiser",
        schema.KIND_INDEX_PK: schema.ADVERTISER_KIND,
        schema.KIND_INDEX_SK: advertiser.advertiser_id,
        "advertiser_id": advertiser.advertiser_id,
        "name": advertiser.name,
        "email": advertiser.email,
        "region": advertiser.region.value,
        "status": advertiser.status.value,
        "status_reason": advertiser.status_reason,
        "created_at": num(advertiser.created_at),
        "updated_at": num(advertiser.updated_at),
        "pending_regions": sorted(r.value for r in advertiser.pending_regions),
        "generation": advertiser.generation,
        "reconsent_pending": advertiser.reconsent_pending,
        "reconsent_leads_sent": list(advertiser.reconsent_leads_sent),
    }
    optional = {
        "invitation_hash": advertiser.invitation_hash or None,
        "invitation_expires_at": advertiser.invitation_expires_at,
        "invitation_purpose": advertiser.invitation_purpose or None,
        "token_expires_at": advertiser.token_expires_at,
        "connected_at": advertiser.connected_at,
        "profiles_at": advertiser.profiles_at,
        "last_refresh_at": advertiser.last_refresh_at,
        "consented_at": advertiser.consented_at,
        "grant_expires_at": advertiser.grant_expires_at,
        "grant_expiry_basis": advertiser.grant_expiry_basis or None,
        "pack": advertiser.pack or None,
    }
    for name, value in optional.items():
        if value is not None:
            item[name] = num(value) if isinstance(value, float) else value
    return item


def advertiser_from_item(item: dict) -> Advertiser:
    return Advertiser(
        advertiser_id=item["advertiser_id"],
        name=item["name"],
        email=item["email"],
        region=Region(item["region"]),
        status=AdvertiserStatus(item["status"]),
        created_at=float(item["created_at"]),
        updated_at=float(item["updated_at"]),
        status_reason=item.get("status_reason", ""),
        token_expires_at=opt_float(item.get("token_expires_at")),
        connected_at=opt_float(item.get("connected_at")),
        pending_regions=tuple(Region(r) for r in item.get("pending_regions", [])),
        profiles_at=opt_float(item.get("profiles_at")),
        last_refresh_at=opt_float(item.get("last_refresh_at")),
        last_refresh_error=item.get("last_refresh_error", ""),
        generation=int(item.get("generation", 1)),
        invitation_hash=item.get("invitation_hash", ""),
        invitation_expires_at=opt_float(item.get("invitation_expires_at")),
        invitation_purpose=item.get("invitation_purpose", ""),
        consented_at=opt_float(item.get("consented_at")),
        grant_expires_at=opt_float(item.get("grant_expires_at")),
        grant_expiry_basis=item.get("grant_expiry_basis", ""),
        reconsent_pending=bool(item.get("reconsent_pending", False)),
        reconsent_leads_sent=tuple(int(d) for d in item.get("reconsent_leads_sent", [])),
        pack=item.get("pack", ""),
    )
