"""The refresher's part of the table: the sparse ``byExpiry`` index, the dispatcher run's lease,
per-advertiser leases, refresh outcomes, the audit trail, the platform pause and the pack items
(``adsauth.packs``: a pack's lease, member count and size)."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any, Iterable, Sequence

from boto3.dynamodb.conditions import Key

from adsauth import schema
from adsauth.adapters.dynamo import (
    CONNECTED,
    DUE_NAMES,
    RETENTION_AFTER_EXPIRY,
    advertiser_from_item,
    expiry_shard,
    from_iso,
    generation_condition,
    iso,
    iso_us,
    num,
    opt_float,
)
from adsauth.models import Advertiser, AdvertiserStatus, DueAdvertiser, Lease, LifecycleEvent, TokenEvent
from adsauth.packs import PackInfo
from adsauth.regions import Region

PLATFORM_KEY = {schema.PK: "PLATFORM#lwa", schema.SK: "PAUSE"}
# the one dispatcher run allowed to queue at a time (``Refresher.dispatch_due``); the
# dispatcher's role may write this item and no other of the PLATFORM# keys
DISPATCH_LEASE_KEY = {schema.PK: "PLATFORM#dispatch", schema.SK: "LEASE"}
# ~30 routine refreshes a day per advertiser: those expire after 90 days; the other events stay
ROUTINE_EVENT_RETENTION = {"refreshed": 90 * 24 * 3600}
BATCH_GET_KEYS = 100  # BatchGetItem's limit per request
BATCH_GET_ATTEMPTS = 5  # unprocessed keys (throttling) are asked for again, after a short backoff
PACK_NAMES = {"#members": "members", "#size": "size"}  # SIZE is a reserved word


class RefreshItems:
    # --- refresher: due index --------------------------------------------------------------------
    def due_advertisers(self, before: float) -> list[DueAdvertiser]:
        """Connected advertisers whose deadline is before ``before``: one query per shard."""
        due: list[DueAdvertiser] = []
        for shard in range(schema.EXPIRY_SHARDS):
            items = self.query_all(
                IndexName=schema.EXPIRY_INDEX,
                KeyConditionExpression=Key(schema.EXPIRY_INDEX_PK).eq(f"DUE#{shard}")
                & Key(schema.EXPIRY_INDEX_SK).lt(iso(before)),
                ProjectionExpression="advertiser_id, #dsk, token_expires_at, pack",
                ExpressionAttributeNames={"#dsk": schema.EXPIRY_INDEX_SK},
            )
            due.extend(
                DueAdvertiser(i["advertiser_id"], i[schema.EXPIRY_INDEX_SK], opt_float(i.get("token_expires_at")),
                              pack=i.get("pack", ""), due_at=from_iso(i[schema.EXPIRY_INDEX_SK]))
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

    # --- dispatcher: the run's lease (transitions: ``Refresher.dispatch_due``) -------------------
    def acquire_dispatch_lease(self, owner: str, now: float, until: float) -> bool:
        """Take the dispatch lease until ``until`` when it is absent, lapsed or already ours."""
        try:
            self.table.put_item(
                Item={**DISPATCH_LEASE_KEY, "type": "lease", "lease_owner": owner, "lease_until": num(until),
                      schema.TTL_ATTRIBUTE: int(until + RETENTION_AFTER_EXPIRY)},
                ConditionExpression="attribute_not_exists(pk) OR lease_until <= :now OR lease_owner = :owner",
                ExpressionAttributeValues={":now": num(now), ":owner": owner},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_dispatch_lease(self, owner: str) -> bool:
        """End the dispatch lease if ``owner`` still holds it (a lapsed run's release must not
        end its successor's)."""
        try:
            self.table.delete_item(
                Key=DISPATCH_LEASE_KEY, ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": owner},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- refresher: lease ------------------------------------------------------------------------
    def acquire_lease(self, advertiser_id: str, owner: str, now: float, until: float) -> tuple[Lease, Advertiser] | None:
        try:
            item = self.table.update_item(
                Key=schema.advertiser_key(advertiser_id),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until ADD lease_fence :one",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeValues={":owner": owner, ":until": num(until), ":one": 1, ":now": num(now)},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        advertiser = advertiser_from_item(item)
        return Lease(advertiser_id, owner, int(item["lease_fence"]), until, advertiser.connected_at), advertiser

    def hold_lease(self, lease: Lease, now: float, until: float) -> Lease | None:
        """Extend the lease if it is still ours and the advertiser still connected (a revoke
        meanwhile ends the refresh before it writes anything)."""
        held = self._update(lease.advertiser_id, "SET lease_until = :until", "#s = :connected", {":until": num(until)},
                            lease=lease, same_grant=True)
        return replace(lease, until=until) if held else None

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
        pack: str | None = None,
    ) -> bool:
        """``pack``: None leaves it, "" removes it (its own secrets), an id sets it."""
        expression = (
            "SET token_expires_at = :exp, last_refresh_at = :now, updated_at = :now, #dpk = :dpk, #dsk = :dsk"
        )
        values = {":exp": num(token_expires_at), ":now": num(now), ":dpk": expiry_shard(advertiser_id), ":dsk": iso(due_at)}
        if profiles_at is not None:
            expression += ", profiles_at = :pat, pending_regions = :pending"
            values.update({":pat": num(profiles_at), ":pending": sorted(r.value for r in pending_regions or ())})
        if pack:
            expression += ", pack = :pack"
            values[":pack"] = pack
        expression += " REMOVE last_refresh_error, last_refresh_error_at" + (", pack" if pack == "" else "")
        return self._update(advertiser_id, expression, "#s = :connected", values, lease=lease, same_grant=True)

    def record_refresh_error(self, advertiser_id: str, reason: str, now: float) -> None:
        self._update(
            advertiser_id, "SET last_refresh_error = :r, last_refresh_error_at = :now", "attribute_exists(pk)",
            {":r": reason, ":now": num(now)},
        )

    def mark_needs_reauth(
        self, advertiser_id: str, reason: str, now: float, lease: Lease, events: Iterable[LifecycleEvent] = ()
    ) -> bool:
        """``needs_reauth`` (and its event) while connected and the lease is still ours."""
        item = self.update(
            schema.advertiser_key(advertiser_id),
            "SET #s = :reauth, status_reason = :r, updated_at = :now, reconsent_pending = :false REMOVE #dpk, #dsk",
            "lease_owner = :owner AND lease_fence = :fence AND #s = :connected AND " + self._grant_condition(lease)[0],
            {":reauth": AdvertiserStatus.NEEDS_REAUTH.value, ":r": reason, ":now": num(now), ":false": False,
             ":owner": lease.owner, ":fence": lease.fence, ":connected": CONNECTED, **self._grant_condition(lease)[1]},
            {"#s": "status", **DUE_NAMES},
        )
        return self.transition([item] + self.event_items(events))

    def note_reconsent_leads(self, advertiser: Advertiser, leads: Sequence[int], lease: Lease,
                             events: Iterable[LifecycleEvent] = ()) -> bool:
        """Record re-consent leads as handled without a new invitation (no mailer: ops are
        alerted instead, and the links they send are not replaced)."""
        item = self.update(
            schema.advertiser_key(advertiser.advertiser_id),
            "SET reconsent_leads_sent = :leads",
            "lease_owner = :owner AND lease_fence = :fence AND #s = :connected AND " + generation_condition(advertiser.generation),
            {":leads": sorted({*advertiser.reconsent_leads_sent, *leads}, reverse=True), ":owner": lease.owner,
             ":fence": lease.fence, ":connected": CONNECTED, ":gen": advertiser.generation},
            {"#s": "status"},
        )
        return self.transition([item] + self.event_items(events))

    def record_grant(self, advertiser_id: str, grant, lease: Lease) -> bool:
        """Give an advertiser connected before grants were recorded its grant (from its
        ``connected_at``), once: only while none is recorded."""
        sets, values = ["grant_expiry_basis = :basis"], {":basis": grant.basis}
        for name, value in (("consented_at", grant.consented_at), ("grant_expires_at", grant.expires_at)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = num(value)
        return self._update(advertiser_id, "SET " + ", ".join(sets), "attribute_not_exists(grant_expiry_basis)",
                            values, lease=lease, same_grant=True)

    @staticmethod
    def _grant_condition(lease: Lease) -> tuple[str, dict]:
        if lease.grant_at is None:
            return "attribute_not_exists(connected_at)", {}
        return "connected_at = :grant_at", {":grant_at": num(lease.grant_at)}

    def _update(
        self, advertiser_id: str, expression: str, condition: str | None, values: dict,
        *, lease: Lease | None = None, same_grant: bool = False,
    ) -> bool:
        """One conditional update of an advertiser; False when the condition does not hold. With
        ``lease``, only the holder of that lease (same owner, same fence) may write; with
        ``same_grant`` too, only while the grant is the one the lease was taken on."""
        if same_grant and lease is not None:
            grant_condition, grant_values = self._grant_condition(lease)
            condition = f"{condition} AND {grant_condition}" if condition else grant_condition
            values = {**values, **grant_values}
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

    # --- packs (``adsauth.packs``; transitions: ``Refresher.refresh_pack``) ----------------------
    def acquire_pack_lease(self, pack_id: str, owner: str, now: float, until: float) -> bool:
        """Take the pack's lease until ``until`` when it is absent (its item is created with no
        members), released, lapsed or already ``owner``'s."""
        try:
            self.table.update_item(
                Key=schema.pack_key(pack_id),
                UpdateExpression=(
                    f"SET #type = :type, pack_id = :id, {schema.KIND_INDEX_PK} = :kind, {schema.KIND_INDEX_SK} = :id, "
                    "lease_owner = :owner, lease_until = :until, "
                    "#members = if_not_exists(#members, :zero), #size = if_not_exists(#size, :zero)"
                ),
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until <= :now OR lease_owner = :owner",
                ExpressionAttributeNames={"#type": "type", **PACK_NAMES},
                ExpressionAttributeValues={":type": "pack", ":id": pack_id, ":kind": schema.PACK_KIND, ":owner": owner,
                                           ":until": num(until), ":zero": 0, ":now": num(now)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_pack_lease(self, pack_id: str, owner: str) -> None:
        """End the lease if ``owner`` still holds it; a pack left without members loses its item."""
        conditional = self.client.exceptions.ConditionalCheckFailedException
        values = {":owner": owner, ":zero": 0}
        try:
            self.table.update_item(
                Key=schema.pack_key(pack_id), UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner AND #members > :zero",
                ExpressionAttributeNames={"#members": "members"}, ExpressionAttributeValues=values,
            )
            return
        except conditional:
            pass  # not ours, or no members left
        try:
            self.table.delete_item(
                Key=schema.pack_key(pack_id),
                ConditionExpression="lease_owner = :owner AND (attribute_not_exists(#members) OR #members <= :zero)",
                ExpressionAttributeNames={"#members": "members"}, ExpressionAttributeValues=values,
            )
        except conditional:
            pass  # not ours (it lapsed and was taken): a lapsed holder must not end its successor's lease

    def record_pack(self, pack_id: str, owner: str, *, members: int, size: int, now: float) -> bool:
        """The pack's member count and larger value's size after a write, while ``owner`` holds
        its lease."""
        try:
            self.table.update_item(
                Key=schema.pack_key(pack_id),
                UpdateExpression="SET #members = :members, #size = :size, written_at = :now",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeNames=PACK_NAMES,
                ExpressionAttributeValues={":members": members, ":size": size, ":now": num(now), ":owner": owner},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def list_packs(self) -> list[PackInfo]:
        """Every pack that has members, by id (the ``byKind`` index: no scan)."""
        items = self.query_all(
            IndexName=schema.KIND_INDEX, KeyConditionExpression=Key(schema.KIND_INDEX_PK).eq(schema.PACK_KIND),
            ProjectionExpression="pack_id, #members, #size", ExpressionAttributeNames=PACK_NAMES,
        )
        packs = (PackInfo(i["pack_id"], int(i.get("members", 0)), int(i.get("size", 0))) for i in items)
        return sorted((p for p in packs if p.members > 0), key=lambda p: p.pack_id)

    def pack_pointers(self, advertiser_ids: Sequence[str]) -> dict[str, tuple[AdvertiserStatus, str]]:
        """Status and ``pack`` of each of these advertisers that exists (BatchGetItem, consistent)."""
        ids, found = list(dict.fromkeys(advertiser_ids)), {}
        for start in range(0, len(ids), BATCH_GET_KEYS):
            request = {self.table.name: {
                "Keys": [schema.advertiser_key(a) for a in ids[start:start + BATCH_GET_KEYS]],
                "ProjectionExpression": "advertiser_id, #s, pack", "ExpressionAttributeNames": {"#s": "status"},
                "ConsistentRead": True,
            }}
            for attempt in range(BATCH_GET_ATTEMPTS):
                page = self.client.batch_get_item(RequestItems=request)  # the resource's client serializes
                for item in page.get("Responses", {}).get(self.table.name, []):
                    found[item["advertiser_id"]] = (AdvertiserStatus(item["status"]), item.get("pack", ""))
                request = page.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError("DynamoDB left advertisers of a batch read unprocessed")
        return found

    def set_pack(self, advertiser_id: str, pack: str, lease: Lease) -> bool:
        """Point the advertiser at ``pack`` ("" = its own secrets) without a refresh, while the
        lease is held on the same grant and it is connected."""
        expression, values = ("SET pack = :pack", {":pack": pack}) if pack else ("REMOVE pack", {})
        return self._update(advertiser_id, expression, "#s = :connected", values, lease=lease, same_grant=True)

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
            "at": num(now),
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
        until = opt_float(item.get("paused_until")) if item else None
        return until if until is not None and until > now else None

    def pause_platform(self, reason: str, now: float, until: float) -> bool:
        try:
            self.table.put_item(
                Item={
                    **PLATFORM_KEY, "type": "platform", "reason": reason, "paused_at": num(now),
                    "paused_until": num(until), schema.TTL_ATTRIBUTE: int(until + RETENTION_AFTER_EXPIRY),
                },
                ConditionExpression="attribute_not_exists(pk) OR paused_until < :now",
                ExpressionAttributeValues={":now": num(now)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
