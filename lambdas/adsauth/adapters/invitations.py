"""Invitations and OAuth states: opening a flow, claiming the invitation before a code is
exchanged, releasing it after a failed attempt. Each step is one DynamoDB transaction that also
checks the advertiser's generation (see ``adsauth.lifecycle``)."""

from __future__ import annotations

from adsauth import schema
from adsauth.adapters.dynamo import RETENTION_AFTER_EXPIRY, Conflict, generation_condition, num, opt_float
from adsauth.errors import (
    InvitationBusy,
    InvitationReplaced,
    InvitationUnknown,
    InvitationUsed,
    StateReplayed,
    TooManyAttempts,
)
from adsauth.models import Invitation, PendingAuthorization
from adsauth.regions import Region


def invitation_item(invitation: Invitation) -> dict:
    return {
        **schema.invitation_key(invitation.token_hash),
        "type": "invitation",
        "advertiser_id": invitation.advertiser_id,
        "region": invitation.region.value,
        "created_at": num(invitation.created_at),
        "expires_at": num(invitation.expires_at),
        "generation": invitation.generation,
        "purpose": invitation.purpose,
        schema.TTL_ATTRIBUTE: int(invitation.expires_at + RETENTION_AFTER_EXPIRY),
    }


TRIES = 3  # a counter's window moving on under a concurrent flow is tried again, not refused


def _window_update(prefix: str, window: int, current: Invitation, cap: int) -> tuple[str, str, dict]:
    """SET/condition parts that count one more ``prefix`` (flows, calls) in the fixed window
    ``window``: +1 when the stored window is this one (and below the cap), else a fresh count."""
    stored_window, count = (current.flow_window, current.flows) if prefix == "flow" else (current.call_window, current.calls)
    name_window, name_count = f"{prefix}_window", f"{prefix}s"
    if stored_window == window:
        return (f"{name_count} = {name_count} + :one", f"{name_window} = :w AND {name_count} < :cap",
                {":w": window, ":cap": cap, ":one": 1})
    return (f"{name_window} = :w, {name_count} = :one",
            f"(attribute_not_exists({name_window}) OR {name_window} <> :w)", {":w": window, ":one": 1})


class InvitationItems:
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
            completed_at=opt_float(item.get("completed_at")),
            generation=int(item.get("generation", 1)),
            purpose=item.get("purpose", "invite"),
            claimed_by=item.get("claimed_by"),
            claim_until=opt_float(item.get("claim_until")),
            flow_window=int(item.get("flow_window", 0)),
            flows=int(item.get("flows", 0)),
            call_window=int(item.get("call_window", 0)),
            calls=int(item.get("calls", 0)),
        )

    def _generation_check(self, advertiser_id: str, generation: int) -> dict:
        return {
            "ConditionCheck": {
                "TableName": self.table.name,
                "Key": schema.advertiser_key(advertiser_id),
                "ConditionExpression": generation_condition(generation),
                "ExpressionAttributeValues": {":gen": generation},
            }
        }

    # --- start: a new flow of an open invitation -------------------------------------------------
    def open_flow(
        self, pending: PendingAuthorization, *, state_expires_at: float, now: float, max_flows: int, window_seconds: int
    ) -> None:
        """Store the state and count the flow, if the invitation is still of the advertiser's
        generation, not completed and below its cap. Raises ``InvitationReplaced``,
        ``InvitationUsed`` or ``TooManyAttempts`` and then stores nothing."""
        window = int(now // window_seconds)
        for _ in range(TRIES):
            current = self.get_invitation(pending.invitation_hash)
            if current is None:
                raise InvitationUnknown()
            counted, counted_condition, values = _window_update("flow", window, current, max_flows)
            state = {
                **schema.state_key(pending.state_hash),
                "type": "state",
                "advertiser_id": pending.advertiser_id,
                "invitation_hash": pending.invitation_hash,
                "region": pending.region.value,
                "code_challenge": pending.code_challenge,
                "created_at": num(pending.created_at),
                "generation": pending.generation,
                schema.TTL_ATTRIBUTE: int(state_expires_at + RETENTION_AFTER_EXPIRY),
            }
            items = [
                {"Put": {"TableName": self.table.name, "Item": state, "ConditionExpression": "attribute_not_exists(pk)"}},
                self.update(
                    schema.invitation_key(pending.invitation_hash),
                    f"SET {counted}, last_flow_at = :now",
                    f"attribute_exists(pk) AND attribute_not_exists(completed_at) AND {counted_condition}",
                    {**values, ":now": num(now)},
                ),
                self._generation_check(pending.advertiser_id, pending.generation),
            ]
            try:
                self.transact(items)
                return
            except Conflict as conflict:
                if 2 in conflict.failed:
                    raise InvitationReplaced() from None
                self._classify_invitation(pending.invitation_hash, window, now, max_flows, "flow")
        raise TooManyAttempts()

    def _classify_invitation(self, token_hash: str, window: int, now: float, cap: int, prefix: str) -> None:
        """Why an invitation's condition failed: raise the matching error, or return to try
        again (its window moved on meanwhile)."""
        current = self.get_invitation(token_hash)
        if current is None:
            raise InvitationUnknown()
        if current.completed_at is not None:
            raise InvitationUsed()
        if prefix == "call" and current.claimed_by and (current.claim_until or 0) >= now:
            raise InvitationBusy()
        stored_window, count = (current.flow_window, current.flows) if prefix == "flow" else (current.call_window, current.calls)
        if stored_window == window and count >= cap:
            raise TooManyAttempts()

    # --- callback: states ------------------------------------------------------------------------
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
            generation=int(item.get("generation", 1)),
        )

    def _consume(self, state_hash: str, now: float) -> dict:
        return self.update(
            schema.state_key(state_hash), "SET consumed_at = :now",
            "attribute_exists(pk) AND attribute_not_exists(consumed_at)", {":now": num(now)},
        )

    def consume_state(self, pending: PendingAuthorization, now: float) -> None:
        """Use the state up (for an answer without a code: decline, error) if it is unused and
        of the advertiser's generation; raises ``StateReplayed`` or ``InvitationReplaced``."""
        try:
            self.transact([self._consume(pending.state_hash, now), self._generation_check(pending.advertiser_id, pending.generation)])
        except Conflict as conflict:
            raise (StateReplayed() if 0 in conflict.failed else InvitationReplaced()) from None

    def claim_invitation(
        self, pending: PendingAuthorization, *, now: float, claim_seconds: int, max_calls: int, window_seconds: int
    ) -> None:
        """Before a code is exchanged: use the state up and make this flow the invitation's only
        one exchanging a code, counting the token call. Raises ``StateReplayed``,
        ``InvitationReplaced``, ``InvitationUsed``, ``InvitationBusy`` or ``TooManyAttempts``, and
        then nothing changed."""
        window = int(now // window_seconds)
        for _ in range(TRIES):
            current = self.get_invitation(pending.invitation_hash)
            if current is None:
                raise InvitationUnknown()
            counted, counted_condition, values = _window_update("call", window, current, max_calls)
            items = [
                self._consume(pending.state_hash, now),
                self.update(
                    schema.invitation_key(pending.invitation_hash),
                    f"SET claimed_by = :me, claim_until = :until, {counted}",
                    "attribute_exists(pk) AND attribute_not_exists(completed_at) "
                    f"AND (attribute_not_exists(claimed_by) OR claim_until < :now) AND {counted_condition}",
                    {**values, ":me": pending.state_hash, ":until": num(now + claim_seconds), ":now": num(now)},
                ),
                self._generation_check(pending.advertiser_id, pending.generation),
            ]
            try:
                self.transact(items)
                return
            except Conflict as conflict:
                if 0 in conflict.failed:
                    raise StateReplayed() from None
                if 2 in conflict.failed:
                    raise InvitationReplaced() from None
                self._classify_invitation(pending.invitation_hash, window, now, max_calls, "call")
        raise TooManyAttempts()

    def release_invitation(self, invitation_hash: str, state_hash: str) -> bool:
        """Let go of this flow's claim after a failed attempt: the same link works again."""
        try:
            self.transact([self.update(
                schema.invitation_key(invitation_hash), "REMOVE claimed_by, claim_until", "claimed_by = :me",
                {":me": state_hash},
            )])
        except Conflict:
            return False
        return True
