"""The refresher's two triggers, run by hand against the local stack:

- the EventBridge schedule: ``dispatch()`` invokes the dispatcher handler once with a
  "Scheduled Event";
- the SQS event source: ``drain()`` receives messages from the refresh queue (moto), hands them to
  the worker handler as a real SQS event, deletes the ones it processed and leaves the ones it
  reported in ``batchItemFailures`` for redelivery, as Lambda's event source mapping does.

``tick()`` is one scheduled minute: a dispatch, then a drain. Failed messages come back once
their visibility timeout passes; ``drain(redeliver_failed=True)`` makes that happen at once, so a
test can follow a job to the DLQ (after the queue's ``maxReceiveCount``) without waiting.
"""

from __future__ import annotations

import importlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import boto3

from local.gateway import LambdaContext

DISPATCHER = "adsauth.handlers.dispatcher:handler"
WORKER = "adsauth.handlers.worker:handler"


def load(handler: str) -> Callable[[dict, Any], dict]:
    module, _, name = handler.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class DrainReport:
    batches: int = 0
    processed: int = 0  # acknowledged (deleted)
    failed: int = 0  # reported back for redelivery
    message_ids: list[str] = field(default_factory=list)


class LocalScheduler:
    def __init__(
        self, *, queue_url: str, batch_size: int = 10, dispatcher: str = DISPATCHER, worker: str = WORKER,
        timeout_seconds: float = 60,
    ) -> None:
        self.queue_url = queue_url
        self.batch_size = batch_size
        self.dispatcher = dispatcher
        self.worker = worker
        self.timeout = timeout_seconds
        self.sqs = boto3.client("sqs")
        self.region = self.sqs.meta.region_name
        self.failed_receipts: list[str] = []  # of messages reported failed, still in flight
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def _context(self, handler: str) -> LambdaContext:
        name = handler.split(":")[0].rsplit(".", 1)[-1]
        return LambdaContext(f"adsauth-local-{name}", self.region, time.monotonic() + self.timeout)

    # --- the schedule --------------------------------------------------------------------------
    def dispatch(self) -> int:
        account = self.queue_arn.split(":")[4]
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:events:{self.region}:{account}:rule/adsauth-local-refresh"],
            "detail": {},
        }
        return load(self.dispatcher)(event, self._context(self.dispatcher))["dispatched"]

    # --- the event source ----------------------------------------------------------------------
    def receive(self) -> list[dict]:
        return self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size, AttributeNames=["All"],
            MessageAttributeNames=["All"], WaitTimeSeconds=0,
        ).get("Messages", [])

    def sqs_event(self, messages: list[dict]) -> dict:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }

    def drain_messages(self, messages: list[dict], *, redeliver_failed: bool = False, delete: bool = True) -> DrainReport:
        """One worker invocation for ``messages``, then what Lambda does with its answer: delete
        the processed ones (``delete=False``: as if the delete was lost), leave the failed ones."""
        report = DrainReport(batches=1, message_ids=[m["MessageId"] for m in messages])
        try:
            response = load(self.worker)(self.sqs_event(messages), self._context(self.worker))
        except Exception:  # an invocation error: Lambda returns the whole batch to the queue
            response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done and delete:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        report.processed, report.failed = len(done), len(failed)
        self.failed_receipts.extend(m["ReceiptHandle"] for m in messages if m["MessageId"] in failed)
        if redeliver_failed:
            self.redeliver()
        return report

    def redeliver(self) -> int:
        """Make the failed messages visible again now, as if their visibility timeout had passed."""
        receipts, self.failed_receipts = self.failed_receipts, []
        for receipt in receipts:
            try:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
            except self.sqs.exceptions.ReceiptHandleIsInvalid:
                pass  # deleted meanwhile
        return len(receipts)

    def drain(self, *, redeliver_failed: bool = False, max_batches: int = 100) -> DrainReport:
        """Deliver batches until no message is visible."""
        report = DrainReport()
        for _ in range(max_batches):
            messages = self.receive()
            if not messages:
                break
            one = self.drain_messages(messages, redeliver_failed=redeliver_failed)
            report.batches += 1
            report.processed += one.processed
            report.failed += one.failed
            report.message_ids.extend(one.message_ids)
        return report

    def tick(self) -> tuple[int, DrainReport]:
        """One scheduled run: the dispatcher, then the worker on whatever it queued."""
        dispatched = self.dispatch()
        return dispatched, self.drain()

    def clear(self, queue_url: str | None = None) -> int:
        """Delete every visible message (PurgeQueue works only once a minute)."""
        url, deleted = queue_url or self.queue_url, 0
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            self.sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            )
            deleted += len(messages)
        return deleted

    # --- inspection ----------------------------------------------------------------------------
    def depth(self, queue_url: str | None = None) -> int:
        """Messages in the queue (visible or in flight)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
