"""The advertiser's lifecycle transitions (``adsauth.lifecycle``), each one DynamoDB transaction:
the advertiser's conditional update, the invitation it concerns, and its outbox events. A
transition whose condition fails changes nothing and returns False (or raises
``TransitionRefused`` with the reason)."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from adsauth import schema
from adsauth.adapters.dynamo import (
    DUE_NAMES,
    Conflict,
    advertiser_from_item,
    advertiser_item,
    expiry_shard,
    generation_condition,
    iso,
    num,
)
from adsauth.adapters.invitations import invitation_item
from adsauth.errors import TransitionRefused
from adsauth.lifecycle import REFUSED, grant_end
from adsauth.models import (
    ATTEMPT_STATUSES,
    Advertiser,
    AdvertiserStatus,
    Grant,
    Invitation,
    LifecycleEvent,
)
from adsauth.regions import Region

ADVERTISER_PAGE_SIZE = 500  # advertisers per query of the ops listing (the 1 MB page limit binds first)


def grant_key_item(grant_key: str) -> dict[str, str]:
    return {schema.PK: f"GRANT#{grant_key}", schema.SK: "GRANT"}


ATTEMPT_VALUES = {f":st{i}": s.value for i, s in enumerate(sorted(ATTEMPT_STATUSES, key=lambda s: s.value))}
ATTEMPT_CONDITION = "#s IN (" + ", ".join(ATTEMPT_VALUES) + ")"


class AdvertiserPages:
    def advertiser_pages(self, page_size: int | None = None) -> Iterator[list[Advertiser]]:
        """Every advertiser by id, one ``byKind`` query page at a time (``list_advertisers`` holds
        them all before returning; the ops listing shows progress and filters as it reads)."""
        from boto3.dynamodb.conditions import Key

        kwargs = {"IndexName": schema.KIND_INDEX, "Limit": page_size or ADVERTISER_PAGE_SIZE,
                  "KeyConditionExpression": Key(schema.KIND_INDEX_PK).eq(schema.ADVERTISER_KIND)}
        while True:
            page = self.table.query(**kwargs)
            yield [advertiser_from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class AdvertiserTransitions:
    # --- invite / import: a new advertiser -------------------------------------------------------
    def create_advertiser(
        self, advertiser: Advertiser, invitation: Invitation | None, events: Iterable[LifecycleEvent],
        *, grant_key: str | None = None,
    ) -> None:
        """``invite`` (with its invitation) or ``import`` (connected, no invitation; ``grant_key``,
        the hash of the imported refresh token, makes a second import of it fail)."""
        items = [{"Put": {"TableName": self.table.name, "Item": advertiser_item(advertiser),
                          "ConditionExpression": "attribute_not_exists(pk)"}}]
        if grant_key is not None:
            items.append({"Put": {"TableName": self.table.name, "ConditionExpression": "attribute_not_exists(pk)",
                                  "Item": {**grant_key_item(grant_key), "type": "imported_grant",
                                           "advertiser_id": advertiser.advertiser_id, "at": num(advertiser.created_at)}}})
        if invitation is not None:
            items.append({"Put": {"TableName": self.table.name, "Item": invitation_item(invitation),
                                  "ConditionExpression": "attribute_not_exists(pk)"}})
        if advertiser.status is AdvertiserStatus.CONNECTED and advertiser.token_expires_at is not None:
            due = self.schedule.deadline(advertiser.token_expires_at, advertiser.profiles_at, advertiser.pending_regions,
                                         grant_end(advertiser.grant_expires_at, advertiser.grant_expiry_basis))
            items[0]["Put"]["Item"].update({schema.EXPIRY_INDEX_PK: expiry_shard(advertiser.advertiser_id),
                                            schema.EXPIRY_INDEX_SK: iso(due)})
        try:
            self.transact(items + self.event_items(events))
        except Conflict:
            raise TransitionRefused(REFUSED["exists"]) from None

    def imported_grant(self, grant_key: str) -> str | None:
        """The advertiser a refresh token (by its hash) was imported for, if any."""
        item = self.table.get_item(Key=grant_key_item(grant_key), ConsistentRead=True).get("Item")
        return item["advertiser_id"] if item else None

    # --- reinvite / reconsent: a new generation with a new invitation ----------------------------
    def issue_invitation(
        self,
        advertiser: Advertiser,
        invitation: Invitation,
        *,
        now: float,
        events: Iterable[LifecycleEvent],
        reconsent_leads: Sequence[int] = (),
        quiet_since: float | None = None,
    ) -> bool:
        """Bump the generation to ``invitation.generation`` and make ``invitation`` the open one.
        ``reinvite`` (no ``reconsent_leads``): only if the generation is unchanged since read; a
        connected advertiser stays connected (``reconsent_pending``), a cancelled one becomes
        invited, any other keeps its status until the link completes.
        ``reconsent``: also only while connected, and never while a flow of the current
        invitation holds its claim (an advertiser completing it right now)."""
        assert invitation.generation == advertiser.generation + 1
        values = {
            ":gen": advertiser.generation, ":next": invitation.generation, ":h": invitation.token_hash,
            ":exp": num(invitation.expires_at), ":purpose": invitation.purpose, ":now": num(now),
        }
        connected = {":connected": AdvertiserStatus.CONNECTED.value}
        names = {"#s": "status"}
        sets = ["generation = :next", "invitation_hash = :h", "invitation_expires_at = :exp",
                "invitation_purpose = :purpose", "updated_at = :now"]
        condition = f"attribute_exists(pk) AND {generation_condition(advertiser.generation)}"
        extra: list[dict] = []
        if reconsent_leads:
            condition += " AND #s = :connected"
            values.update(connected)
            sets += ["reconsent_pending = :true", "reconsent_leads_sent = :leads"]
            values.update({":true": True, ":leads": sorted({*advertiser.reconsent_leads_sent, *reconsent_leads}, reverse=True)})
            if advertiser.invitation_hash:
                # not while the advertiser is completing the current link (a claim held) nor,
                # with ``quiet_since``, while at Amazon with it (a flow opened since then)
                check = "attribute_not_exists(claimed_by) OR claim_until < :now"
                check_values = {":now": num(now)}
                if quiet_since is not None:
                    check = f"({check}) AND (attribute_not_exists(last_flow_at) OR last_flow_at < :quiet)"
                    check_values[":quiet"] = num(quiet_since)
                extra.append({"ConditionCheck": {
                    "TableName": self.table.name, "Key": schema.invitation_key(advertiser.invitation_hash),
                    "ConditionExpression": check, "ExpressionAttributeValues": check_values,
                }})
        elif advertiser.status is AdvertiserStatus.CONNECTED:
            condition += " AND #s = :connected"
            values.update(connected)
            sets.append("reconsent_pending = :true")
            values[":true"] = True
        elif advertiser.status is AdvertiserStatus.CANCELLED:
            condition += " AND #s = :cancelled"
            sets += ["#s = :invited", "status_reason = :empty"]
            values.update({":invited": AdvertiserStatus.INVITED.value, ":empty": "", ":cancelled": AdvertiserStatus.CANCELLED.value})
        else:  # invited, declined, failed, needs_reauth, revoked: the status says what is true until it completes
            condition += " AND #s <> :connected AND #s <> :cancelled"
            values.update({**connected, ":cancelled": AdvertiserStatus.CANCELLED.value})
        items = [
            self.update(schema.advertiser_key(advertiser.advertiser_id), "SET " + ", ".join(sets), condition, values, names),
            {"Put": {"TableName": self.table.name, "Item": invitation_item(invitation),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            *extra,
        ]
        return self.transition(items + self.event_items(events))

    # --- cancel / revoke: a new generation, no invitation ----------------------------------------
    def cancel_invitation(self, advertiser: Advertiser, *, now: float, events: Iterable[LifecycleEvent]) -> bool:
        """Kill the open invitation (and every state it opened). An advertiser that has no grant
        (invited, declined, failed) becomes ``cancelled``; any other keeps its status."""
        values = {":gen": advertiser.generation, ":next": advertiser.generation + 1, ":h": advertiser.invitation_hash,
                  ":now": num(now), ":false": False}
        sets = "SET generation = :next, updated_at = :now, reconsent_pending = :false"
        if advertiser.status in ATTEMPT_STATUSES:
            sets += ", #s = :cancelled, status_reason = :reason"
            values.update({":cancelled": AdvertiserStatus.CANCELLED.value, ":reason": "operator"})
            condition_status = " AND " + ATTEMPT_CONDITION
            values.update(ATTEMPT_VALUES)
        else:
            condition_status = " AND NOT (" + ATTEMPT_CONDITION + ")"
            values.update(ATTEMPT_VALUES)
        item = self.update(
            schema.advertiser_key(advertiser.advertiser_id),
            sets + " REMOVE invitation_hash, invitation_expires_at, invitation_purpose",
            f"{generation_condition(advertiser.generation)} AND invitation_hash = :h{condition_status}",
            values, {"#s": "status"},
        )
        return self.transition([item] + self.event_items(events))

    def revoke_advertiser(self, advertiser: Advertiser, *, cause: str, now: float, events: Iterable[LifecycleEvent]) -> bool:
        """``revoked`` and a new generation (every link and state dies), before any secret is
        deleted: from here on nothing refreshes or completes for it."""
        item = self.update(
            schema.advertiser_key(advertiser.advertiser_id),
            "SET #s = :revoked, status_reason = :cause, generation = :next, updated_at = :now, reconsent_pending = :false "
            "REMOVE #dpk, #dsk, invitation_hash, invitation_expires_at, invitation_purpose",
            f"attribute_exists(pk) AND {generation_condition(advertiser.generation)}",
            {":revoked": AdvertiserStatus.REVOKED.value, ":cause": cause, ":next": advertiser.generation + 1,
             ":gen": advertiser.generation, ":now": num(now), ":false": False},
            {"#s": "status", **DUE_NAMES},
        )
        return self.transition([item] + self.event_items(events))

    # --- the callback's outcomes -------------------------------------------------------------------
    def set_attempt_outcome(
        self, advertiser_id: str, *, generation: int, status: AdvertiserStatus, reason: str, now: float,
        events: Iterable[LifecycleEvent] = (),
    ) -> bool:
        """``declined`` / ``failed``: only over an advertiser of this generation that has no
        working grant and no operator decision (see ``ATTEMPT_STATUSES``)."""
        item = self.update(
            schema.advertiser_key(advertiser_id),
            "SET #s = :s, status_reason = :r, updated_at = :now",
            f"{generation_condition(generation)} AND {ATTEMPT_CONDITION}",
            {":s": status.value, ":r": reason, ":now": num(now), ":gen": generation, **ATTEMPT_VALUES},
            {"#s": "status"},
        )
        return self.transition([item] + self.event_items(events))

    def complete_connection(
        self,
        *,
        advertiser_id: str,
        generation: int,
        invitation_hash: str | None,
        state_hash: str | None,
        grant: Grant,
        token_expires_at: float,
        pending_regions: Iterable[Region],
        now: float,
        events: Iterable[LifecycleEvent],
    ) -> bool:
        """``complete``: connected with this grant, if the generation is unchanged and (with an
        invitation) this state still holds its claim; the invitation is completed in the same
        transaction, so it completes at most once. False: nothing was changed."""
        pending = sorted(r.value for r in pending_regions)
        due = self.schedule.deadline(token_expires_at, now, pending, grant_end(grant.expires_at, grant.basis))
        sets = [
            "#s = :s", "status_reason = :empty", "updated_at = :now", "connected_at = :now",
            "token_expires_at = :exp", "pending_regions = :pending", "profiles_at = :now", "#dpk = :dpk", "#dsk = :dsk",
            "grant_expiry_basis = :basis", "reconsent_pending = :false", "reconsent_leads_sent = :none",
        ]
        removes = ["last_refresh_error", "pack"]  # a new grant's tokens are in its own secrets
        values = {
            ":s": AdvertiserStatus.CONNECTED.value, ":empty": "", ":now": num(now), ":exp": num(token_expires_at),
            ":pending": pending, ":dpk": expiry_shard(advertiser_id), ":dsk": iso(due), ":basis": grant.basis,
            ":false": False, ":none": [], ":gen": generation,
        }
        for name, value in (("consented_at", grant.consented_at), ("grant_expires_at", grant.expires_at)):
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = num(value)
        if invitation_hash:
            removes += ["invitation_hash", "invitation_expires_at", "invitation_purpose"]
        items = [self.update(
            schema.advertiser_key(advertiser_id),
            "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
            f"attribute_exists(pk) AND {generation_condition(generation)}",
            values, {"#s": "status", **DUE_NAMES},
        )]
        if invitation_hash:
            items.append(self.update(
                schema.invitation_key(invitation_hash),
                "SET completed_at = :now REMOVE claimed_by, claim_until",
                "attribute_exists(pk) AND attribute_not_exists(completed_at) AND claimed_by = :me",
                {":now": num(now), ":me": state_hash},
            ))
        return self.transition(items + self.event_items(events))
