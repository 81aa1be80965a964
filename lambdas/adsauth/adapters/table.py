"""DynamoDB: advertisers, profiles, invitations, OAuth states, refresh leases and the audit trail
in one table (see ``schema``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Sequence

from boto3.dynamodb.conditions import Key

from adsauth import schema
from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    DueAdvertiser,
    DueSchedule,
    Invitation,
    Lease,
    PendingAuthorization,
    Profile,
    TokenEvent,
)
from adsauth.regions import Region

RETENTION_AFTER_EXPIRY = 24 * 3600  # TTL clean-up margin; expiry itself is checked in code
PLATFORM_KEY = {schema.PK: "PLATFORM#lwa", schema.SK: "PAUSE"}
DUE_NAMES = {"#dpk": schema.EXPIRY_INDEX_PK, "#dsk": schema.EXPIRY_INDEX_SK}
CONNECTED = AdvertiserStatus.CONNECTED.value
# ~30 routine refreshes a day per advertiser: those expire after 90 days; the other events stay
ROUTINE_EVENT_RETENTION = {"refreshed": 90 * 24 * 3600}


def _num(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_us(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expiry_shard(advertiser_id: str) -> str:
    return f"DUE#{sum(advertiser_id.encode()) % schema.EXPIRY_SHARDS}"


class DynamoStore:
    def __init__(self, *, table: Any, schedule: DueSchedule | None = None) -> None:
        self.table = table
        self.client = table.meta.client
        self.schedule = schedule or DueSchedule()

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
        return self._advertiser(item) if item else None

    def list_advertisers(self) -> list[Advertiser]:
        """Every advertiser, by id (the ``byKind`` index: no scan)."""
        items = self._query(
            IndexName=schema.KIND_INDEX, KeyConditionExpression=Key(schema.KIND_INDEX_PK).eq(schema.ADVERTISER_KIND)
        )
        return [self._advertiser(item) for item in items]

    @staticmethod
    def _advertiser(item: dict) -> Advertiser:
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
            profiles_at=_float(item.get("profiles_at")),
            last_refresh_at=_float(item.get("last_refresh_at")),
            last_refresh_error=item.get("last_refresh_error", ""),
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
        """Set the status; with ``unless``, leave an advertiser in that status untouched. An
        advertiser that is not connected leaves the refresher's index (it is sparse)."""
        condition = "attribute_exists(pk)"
        values = {":s": status.value, ":r": reason, ":now": _num(now)}
        names = {"#s": "status"}
        expression = "SET #s = :s, status_reason = :r, updated_at = :now"
        if status is not AdvertiserStatus.CONNECTED:
            expression += " REMOVE #dpk, #dsk"
            names.update(DUE_NAMES)
        if unless is not None:
            condition += " AND #s <> :unless"
            values[":unless"] = unless.value
        try:
            self.table.update_item(
                Key=schema.advertiser_key(advertiser_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
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
        self.merge_profiles(advertiser_id, profiles, now)
        pending = sorted(r.value for r in pending_regions)
        self.table.update_item(
            Key=schema.advertiser_key(advertiser_id),
            UpdateExpression=(
                "SET #s = :s, status_reason = :empty, updated_at = :now, connected_at = :now, "
                "token_expires_at = :exp, pending_regions = :pending, profiles_at = :now, "
                "#dpk = :dpk, #dsk = :dsk REMOVE last_refresh_error"
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
                ":pending": pending,
                ":dpk": expiry_shard(advertiser_id),
                ":dsk": iso(self.schedule.deadline(token_expires_at, now, pending)),
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

    def merge_profiles(self, advertiser_id: str, found: dict[Region, list[Profile]], now: float) -> None:
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

    # --- refresher: due index --------------------------------------------------------------------
    def due_advertisers(self, before: float) -> list[DueAdvertiser]:
        """Connected advertisers whose deadline is before ``before``: one query per shard."""
        due: list[DueAdvertiser] = []
        for shard in range(schema.EXPIRY_SHARDS):
            items = self._query(
                IndexName=schema.EXPIRY_INDEX,
                KeyConditionExpression=Key(schema.EXPIRY_INDEX_PK).eq(f"DUE#{shard}")
                & Key(schema.EXPIRY_INDEX_SK).lt(iso(before)),
                ProjectionExpression="advertiser_id, #dsk, token_expires_at",
                ExpressionAttributeNames={"#dsk": schema.EXPIRY_INDEX_SK},
            )
            due.extend(
                DueAdvertiser(i["advertiser_id"], i[schema.EXPIRY_INDEX_SK], _float(i.get("token_expires_at")))
                for i in items
            )
        return due

    def snooze(self, due: DueAdvertiser, until: float) -> bool:
        return self._update(
            due.advertiser_id, "SET #dsk = :until", "#dsk = :seen AND #s = :connected",
            {":until": iso(until), ":seen": due.due_sk}
        )

    def set_deadline(self, advertiser_id: str, due_at: float) -> None:
        self._update(
            advertiser_id, "SET #dpk = :dpk, #dsk = :dsk", "#s = :connected",
            {":dpk": expiry_shard(advertiser_id), ":dsk": iso(due_at)}
        )

    # --- refresher: lease ------------------------------------------------------------------------
    def acquire_lease(self, advertiser_id: str, owner: str, now: float, until: float) -> tuple[Lease, Advertiser] | None:
        try:
            item = self.table.update_item(
                Key=schema.advertiser_key(advertiser_id),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until ADD lease_fence :one",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeValues={":owner": owner, ":until": _num(until), ":one": 1, ":now": _num(now)},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return Lease(advertiser_id, owner, int(item["lease_fence"]), until), self._advertiser(item)

    def hold_lease(self, lease: Lease, now: float, until: float) -> Lease | None:
        held = self._update(lease.advertiser_id, "SET lease_until = :until", None, {":until": _num(until)}, lease=lease)
        return Lease(lease.advertiser_id, lease.owner, lease.fence, until) if held else None

    def release_lease(self, lease: Lease) -> None:
        self._update(lease.advertiser_id, "REMOVE lease_owner, lease_until", None, {}, lease=lease)

    # --- refresher: outcomes ---------------------------------------------------------------------
    def record_refresh(
        self,
        advertiser_id: str,
        *,
        lease: Lease,
        token_expires_at: float,
        due_at: float,
        now: float,
        profiles_at: float | None = None,
        pending_regions: Sequence[Region] | None = None,
    ) -> bool:
        expression = (
            "SET token_expires_at = :exp, last_refresh_at = :now, updated_at = :now, #dpk = :dpk, #dsk = :dsk"
        )
        values = {":exp": _num(token_expires_at), ":now": _num(now), ":dpk": expiry_shard(advertiser_id), ":dsk": iso(due_at)}
        if profiles_at is not None:
            expression += ", profiles_at = :pat, pending_regions = :pending"
            values.update({":pat": _num(profiles_at), ":pending": sorted(r.value for r in pending_regions or ())})
        expression += " REMOVE last_refresh_error, last_refresh_error_at"
        return self._update(advertiser_id, expression, "#s = :connected", values, lease=lease)

    def record_refresh_error(self, advertiser_id: str, reason: str, now: float) -> None:
        self._update(
            advertiser_id, "SET last_refresh_error = :r, last_refresh_error_at = :now", "attribute_exists(pk)",
            {":r": reason, ":now": _num(now)},
        )

    def mark_needs_reauth(self, advertiser_id: str, reason: str, now: float, lease: Lease) -> bool:
        return self._update(
            advertiser_id,
            "SET #s = :reauth, status_reason = :r, updated_at = :now REMOVE #dpk, #dsk",
            "#s = :connected",
            {":reauth": AdvertiserStatus.NEEDS_REAUTH.value, ":r": reason, ":now": _num(now)},
            lease=lease
        )

    def _update(
        self, advertiser_id: str, expression: str, condition: str | None, values: dict,
        *, lease: Lease | None = None,
    ) -> bool:
        """One conditional update of an advertiser; False when the condition does not hold. With
        ``lease``, only the holder of that lease (same owner, same fence) may write."""
        text = (condition or "") + expression
        names = {k: v for k, v in {"#s": "status", **DUE_NAMES}.items() if k in text}
        values = dict(values)
        if ":connected" in text:
            values[":connected"] = CONNECTED
        if lease is not None:
            lease_condition = "lease_owner = :owner AND lease_fence = :fence"
            condition = f"{lease_condition} AND {condition}" if condition else lease_condition
            values.update({":owner": lease.owner, ":fence": lease.fence})
        kwargs: dict[str, Any] = {"Key": schema.advertiser_key(advertiser_id), "UpdateExpression": expression}
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.table.update_item(**kwargs)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- audit trail -----------------------------------------------------------------------------
    def add_event(self, advertiser_id: str, event: str, cause: str, now: float) -> None:
        """One token event (connected, refreshed, rotated, revoked, needs_reauth): never a token."""
        item = {
            schema.PK: f"ADV#{advertiser_id}",
            schema.SK: f"EVENT#{iso_us(now)}#{uuid.uuid4().hex[:8]}",
            "type": "event",
            "advertiser_id": advertiser_id,
            "event": event,
            "cause": cause,
            "at": _num(now),
        }
        if event in ROUTINE_EVENT_RETENTION:
            item[schema.TTL_ATTRIBUTE] = int(now + ROUTINE_EVENT_RETENTION[event])
        self.table.put_item(Item=item)

    def list_events(self, advertiser_id: str, limit: int = 20) -> list[TokenEvent]:
        """The latest ``limit`` events, newest first."""
        page = self.table.query(
            KeyConditionExpression=Key(schema.PK).eq(f"ADV#{advertiser_id}") & Key(schema.SK).begins_with("EVENT#"),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [TokenEvent(advertiser_id, float(i["at"]), i["event"], i.get("cause", "")) for i in page.get("Items", [])]

    # --- platform pause (LwA refused our client) -------------------------------------------------
    def platform_paused_until(self, now: float) -> float | None:
        item = self.table.get_item(Key=PLATFORM_KEY, ConsistentRead=True).get("Item")
        until = _float(item.get("paused_until")) if item else None
        return until if until is not None and until > now else None

    def pause_platform(self, reason: str, now: float, until: float) -> bool:
        try:
            self.table.put_item(
                Item={
                    **PLATFORM_KEY, "type": "platform", "reason": reason, "paused_at": _num(now),
                    "paused_until": _num(until), schema.TTL_ATTRIBUTE: int(until + RETENTION_AFTER_EXPIRY),
                },
                ConditionExpression="attribute_not_exists(pk) OR paused_until < :now",
                ExpressionAttributeValues={":now": _num(now)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

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
