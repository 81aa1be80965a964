"""The lobby (``adsauth.packs``): advertisers of their own secrets, refreshed alone in the packed
layout, waiting for a pack with room to take them in at its next job. One item, a string set of
advertiser ids (at most ``packs.LOBBY_LIMIT``, well inside DynamoDB's 400 KB)."""

from __future__ import annotations

from typing import Sequence

from adsauth import schema
from adsauth.packs import LOBBY_LIMIT

LOBBY_KEY = {schema.PK: "PACK#lobby", schema.SK: "LOBBY"}  # "lobby" is no pack id (16 hex digits)


class LobbyItems:
    def lobby(self) -> list[str]:
        item = self.table.get_item(Key=LOBBY_KEY, ProjectionExpression="ids", ConsistentRead=True).get("Item") or {}
        return sorted(item.get("ids") or ())

    def enter_lobby(self, advertiser_id: str) -> None:
        """Add the advertiser unless the lobby is full (it then joins a pack from a later round)."""
        try:
            self.table.update_item(
                Key=LOBBY_KEY, UpdateExpression="ADD ids :one",
                ConditionExpression="attribute_not_exists(ids) OR size(ids) < :limit",
                ExpressionAttributeValues={":one": {advertiser_id}, ":limit": LOBBY_LIMIT},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass

    def leave_lobby(self, advertiser_ids: Sequence[str]) -> None:
        for start in range(0, len(advertiser_ids), 100):
            self.table.update_item(
                Key=LOBBY_KEY, UpdateExpression="DELETE ids :gone",
                ExpressionAttributeValues={":gone": set(advertiser_ids[start:start + 100])},
            )
