"""The token refresher: a schedule, a dispatcher, a queue, bounded workers and their DLQs.

```
EventBridge rate(N minutes) ─► dispatcher (one run at a time: a lease in the table)
    finds advertisers whose access token is due (index byExpiry) ─► refresh queue
    a run that fails (or cannot be delivered) ─► dispatcher DLQ
refresh queue ─► worker (batches of 10, at most ``refresh_concurrency`` at once)
    refresh token at LwA → new secrets → profiles when their cadence is due
    a message that fails 5 times ─► refresh DLQ
```

The alarms on all of it live in ``infra.monitoring``; the worker publishes per-advertiser alerts
(re-authorization needed, LwA refusing our client) to the same alert topic.

The dispatcher never touches a secret. Only the worker reads refresh tokens and the LwA client
secret; it stores access tokens, and in the packed layout (``adsauth.packs``) it creates and
deletes pack secrets and moves advertisers between their own secrets and a pack, reading the
access-token secrets of packs only, never an advertiser's own. Both publish lifecycle events; with ``ses_sender`` the worker also emails
re-consent invitations, from ``ses_from_address`` only.
"""

from __future__ import annotations

from adsauth import schema
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.bundling import function_code
from infra.config import AdsAuthConfig
from infra.constants import (
    DISPATCHER_HANDLER,
    DISPATCHER_TIMEOUT,
    DLQ_RETENTION,
    REFRESH_BATCH_SIZE,
    REFRESH_LEASE_SECONDS,
    REFRESH_MAX_RECEIVE_COUNT,
    VISIBILITY_TIMEOUT_FACTOR,
    WORKER_HANDLER,
    WORKER_TIMEOUT,
)
from infra.environment import (
    function_environment,
    grant_environment,
    refresher_environment,
    secret_writer_environment,
)
from infra.event_bus import LifecycleEventBus
from infra.functions import AdsAuthFunction
from infra.storage import Storage
from infra.table_grants import (
    ADVERTISER_ITEMS,
    DISPATCH_LEASE_ITEM,
    DUE_SHARDS,
    INVITATION_ITEMS,
    OUTBOX_ITEMS,
    PACK_ITEMS,
    PACKS,
    PENDING_EVENTS,
    PLATFORM_PAUSE_ITEM,
)

# The table, as each function's code uses it (Storage.grant_items: actions by partition-key
# pattern). The dispatcher: its run's lease, the platform pause (read only), the due index, the
# snooze of a queued advertiser, the outbox relay.
DISPATCHER_ITEMS = {
    "GetItem": (PLATFORM_PAUSE_ITEM, PACK_ITEMS),
    "PutItem": (DISPATCH_LEASE_ITEM,),
    "DeleteItem": (DISPATCH_LEASE_ITEM,),
    "UpdateItem": (ADVERTISER_ITEMS, PACK_ITEMS),
    "BatchWriteItem": (OUTBOX_ITEMS,),
}
# (packs: the lobby of advertisers waiting to join, read and emptied; the packs listed by byKind)
DISPATCHER_QUERIES = {schema.EXPIRY_INDEX: (DUE_SHARDS,), schema.KIND_INDEX: (PENDING_EVENTS, PACKS)}
# The worker: the advertiser's lease, refresh outcomes, transitions (with outbox events),
# profiles and audit trail; the platform pause (LwA refused our client); a re-consent's new
# invitation, checked against the one being completed; the outbox relay.
WORKER_ITEMS = {
    "GetItem": (ADVERTISER_ITEMS, PLATFORM_PAUSE_ITEM),
    "PutItem": (ADVERTISER_ITEMS, INVITATION_ITEMS, OUTBOX_ITEMS, PLATFORM_PAUSE_ITEM),
    "UpdateItem": (ADVERTISER_ITEMS, PACK_ITEMS),
    "DeleteItem": (PACK_ITEMS,),
    "ConditionCheckItem": (INVITATION_ITEMS,),
    "BatchWriteItem": (ADVERTISER_ITEMS, OUTBOX_ITEMS),
    "BatchGetItem": (ADVERTISER_ITEMS,),
}
# (packs: a pack job's lease and member count, a pack's item deleted when it empties, the lobby
# joined; where each advertiser of a pack keeps its tokens, in one batch read)
WORKER_QUERIES = {None: (ADVERTISER_ITEMS,), schema.KIND_INDEX: (PENDING_EVENTS,)}


class Refresher(Construct):
    """Keeps every connected advertiser's access token fresh, with bounded load on LwA."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AdsAuthConfig,
        storage: Storage,
        public_base_url: str,
        alert_topic: sns.ITopic,
        event_bus: LifecycleEventBus,
        layers: list[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self.alert_topic = alert_topic
        # Failed dispatcher runs: the async invocation's failure record (request id, error type;
        # never a token) and events EventBridge could not deliver. Kept for diagnosis.
        self.dispatcher_dead_letter_queue = sqs.Queue(
            self,
            "DispatcherDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        NagSuppressions.add_resource_suppressions(
            self.dispatcher_dead_letter_queue.node.default_child,
            [
                {
                    "id": "AwsSolutions-SQS3",
                    "reason": "This queue is itself a dead-letter queue: the dispatcher's "
                    "on-failure destination and its EventBridge target's DLQ. cdk-nag only "
                    "recognizes queues named in another queue's RedrivePolicy.",
                }
            ],
        )
        self.dead_letter_queue = sqs.Queue(
            self,
            "RefreshDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        self.queue = sqs.Queue(
            self,
            "RefreshQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(
                WORKER_TIMEOUT.to_seconds() * VISIBILITY_TIMEOUT_FACTOR
            ),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=REFRESH_MAX_RECEIVE_COUNT
            ),
        )

        environment = {
            **function_environment(config, storage, public_base_url),
            **grant_environment(config),
            **refresher_environment(config),
            "REFRESH_QUEUE_URL": self.queue.queue_url,
            "ALERT_TOPIC_ARN": self.alert_topic.topic_arn,
            "REFRESH_LEAD_SECONDS": str(config.refresh_lead_seconds),
            "PROFILE_REFRESH_SECONDS": str(config.profile_refresh_seconds),
            "REFRESH_LEASE_SECONDS": str(REFRESH_LEASE_SECONDS),
        }
        self.dispatcher = AdsAuthFunction(
            self,
            "Dispatcher",
            handler=DISPATCHER_HANDLER,
            description="adsauth: queue a refresh for every advertiser whose token is due",
            code=function_code(DISPATCHER_HANDLER),
            layers=layers,
            environment=environment,
            timeout=DISPATCHER_TIMEOUT,
            # No reserved concurrency (a new account's quota of 10 allows none): overlapping runs
            # are made harmless by the dispatch lease in the table, not by a concurrency of 1.
        ).function
        self.worker = AdsAuthFunction(
            self,
            "Worker",
            handler=WORKER_HANDLER,
            description="adsauth: refresh the tokens (and profiles) of queued advertisers",
            code=function_code(WORKER_HANDLER),
            layers=layers,
            environment={
                **environment,
                # it creates pack secrets, and an advertiser's own when it leaves a pack
                **secret_writer_environment(storage, creates_refresh_secrets=True),
            },
            timeout=WORKER_TIMEOUT,
            # No reserved concurrency: the event source's maximum concurrency already bounds the
            # workers to refresh_concurrency (and the parallel calls to LwA to 10 × that, a
            # batch's records being refreshed at once).
            role_path=storage.reader_role_path,
        ).function

        self._schedule(config.refresh_schedule_minutes)
        self.worker.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=REFRESH_BATCH_SIZE,
                max_concurrency=config.refresh_concurrency,
                report_batch_item_failures=True,
            )
        )

        storage.grant_items(self.dispatcher, DISPATCHER_ITEMS, queries=DISPATCHER_QUERIES)
        self.queue.grant_send_messages(self.dispatcher)
        event_bus.grant_publish(self.dispatcher)

        storage.grant_items(self.worker, WORKER_ITEMS, queries=WORKER_QUERIES)
        storage.grant_client_secret_read(self.worker)
        storage.grant_refresh_secrets_read_write(self.worker)
        storage.grant_access_secrets_write(self.worker)
        storage.grant_token_moves(self.worker)
        self.alert_topic.grant_publish(self.worker)
        event_bus.grant_publish(self.worker)
        if config.ses_sender and config.from_address:
            self._grant_send_email(config.ses_sender, config.from_address)

    def _grant_send_email(self, sender: str, from_address: str) -> None:
        """``ses:SendEmail`` (re-consent invitations) from exactly ``from_address``
        (``ses:FromAddress``), on the SES identities that may authorize it: the configured
        ``ses_sender``, the address itself and its domain (IAM checks the identity SES picks,
        the most specific one ops verified)."""
        domain = from_address.rpartition("@")[2]
        identities = list(dict.fromkeys([sender, from_address, domain]))
        conditions = {"StringEquals": {"ses:FromAddress": from_address}}
        stack = Stack.of(self)
        iam.Grant.add_to_principal(
            grantee=self.worker,
            actions=["ses:SendEmail"],
            resource_arns=[
                stack.format_arn(service="ses", resource="identity", resource_name=identity)
                for identity in identities
            ],
            conditions=conditions,
        )

    def _schedule(self, minutes: int) -> None:
        every = Duration.minutes(minutes)
        # A run that cannot start before the next one is due is worthless: drop it rather than
        # let retries pile up behind a run that still holds the dispatch lease. What is dropped
        # or fails is recorded in the dispatcher DLQ (and alarmed on): the next run does the work.
        max_age = Duration.seconds(max(60, every.to_seconds()))
        self.dispatcher.configure_async_invoke(
            retry_attempts=0,
            max_event_age=max_age,
            on_failure=destinations.SqsDestination(self.dispatcher_dead_letter_queue),
        )
        events.Rule(
            self,
            "Schedule",
            description="adsauth: run the refresh dispatcher",
            schedule=events.Schedule.rate(every),
            targets=[
                targets.LambdaFunction(
                    self.dispatcher,
                    retry_attempts=2,
                    max_event_age=max_age,
                    dead_letter_queue=self.dispatcher_dead_letter_queue,
                )
            ],
        )
