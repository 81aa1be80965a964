"""The outbox of lifecycle events, and its relay to EventBridge.

A transition writes its events as outbox items in the same DynamoDB transaction as the change
(``put_event``), so an event exists exactly when its change does. The relay (``events.relay``) publishes them
(``PutEvents``) and deletes what EventBridge accepted: right after the transition, and again from
the dispatcher every run for whatever a crash or an EventBridge failure left behind. An event can
therefore be delivered twice, never lost: consumers de-duplicate on ``detail.eventId``.

Outbox items sit in the ``byKind`` index under ``kind_pk=OUTBOX`` (sorted by time): the relay
reads them with a query, never a scan.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from boto3.dynamodb.conditions import Key

from adsauth import schema
from adsauth.adapters.dynamo import iso_us, num
from adsauth.events import SOURCE
from adsauth.models import LifecycleEvent

OUTBOX_KIND = "OUTBOX"
OUTBOX_RETENTION = 14 * 24 * 3600  # an event EventBridge refused for two weeks is dropped by TTL
PUT_EVENTS_BATCH = 10


def outbox_key(event_id: str) -> dict[str, str]:
    return {schema.PK: f"OUTBOX#{event_id}", schema.SK: "OUTBOX"}


class OutboxItems:
    """The store's part: outbox items in transactions, pending ones by time, deletion."""

    table: Any
    events_enabled: bool

    def put_event(self, event: LifecycleEvent) -> dict:
        """The transaction item that writes ``event`` to the outbox."""
        item = {
            **outbox_key(event.event_id),
            "type": "outbox",
            schema.KIND_INDEX_PK: OUTBOX_KIND,
            schema.KIND_INDEX_SK: f"{iso_us(event.at)}#{event.event_id}",
            "advertiser_id": event.advertiser_id,
            "detail_type": event.detail_type,
            "detail": json.dumps(event.detail, sort_keys=True),
            "at": num(event.at),
            schema.TTL_ATTRIBUTE: int(event.at + OUTBOX_RETENTION),
        }
        return {"Put": {"TableName": self.table.name, "Item": item}}

    def event_items(self, events: Iterable[LifecycleEvent]) -> list[dict]:
        return [self.put_event(e) for e in events] if self.events_enabled else []

    def pending_events(self, limit: int = 100) -> list[LifecycleEvent]:
        page = self.table.query(
            IndexName=schema.KIND_INDEX,
            KeyConditionExpression=Key(schema.KIND_INDEX_PK).eq(OUTBOX_KIND),
            Limit=limit,
        )
        return [
            LifecycleEvent(i["detail_type"], i["advertiser_id"], json.loads(i["detail"]), i["pk"].split("#", 1)[1], float(i["at"]))
            for i in page.get("Items", [])
        ]

    def forget_events(self, event_ids: Sequence[str]) -> None:
        with self.table.batch_writer() as batch:
            for event_id in event_ids:
                batch.delete_item(Key=outbox_key(event_id))


class EventBridgePublisher:
    def __init__(self, *, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def publish(self, events: Sequence[LifecycleEvent]) -> list[str]:
        """Send ``events``; returns the ids EventBridge accepted."""
        accepted: list[str] = []
        for start in range(0, len(events), PUT_EVENTS_BATCH):
            chunk = events[start : start + PUT_EVENTS_BATCH]
            response = self.client.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": e.detail_type,
                        "Detail": json.dumps(e.detail, sort_keys=True),
                        "Resources": [],
                        "EventBusName": self.bus_name,
                    }
                    for e in chunk
                ]
            )
            for event, entry in zip(chunk, response.get("Entries", [])):
                if entry.get("EventId") and not entry.get("ErrorCode"):
                    accepted.append(event.event_id)
        return accepted
