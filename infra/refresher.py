"""The token refresher: a schedule, a dispatcher, a queue, bounded workers and their DLQs.

```
EventBridge rate(N minutes) ─► dispatcher (reserved concurrency 1)
    finds advertisers whose access token is due (index byExpiry) ─► refresh queue
    a run that fails (or cannot be delivered) ─► dispatcher DLQ
refresh queue ─► worker (batches of 10, at most ``refresh_concurrency`` at once)
    refresh token at LwA → new secrets → profiles when their cadence is due
    a message that fails 5 times ─► refresh DLQ
```

The alarms on all of it live in ``infra.monitoring``; the worker publishes per-advertiser alerts
(re-authorization needed, LwA refusing our client) to the same alert topic.

The dispatcher never touches a secret. Only the worker reads refresh tokens and the LwA client
secret; it stores access tokens in the secrets the exchange path created, without being able to
create or read one. Both publish lifecycle events; with ``ses_sender`` the worker also emails
re-consent invitations, from that identity only.
"""

from __future__ import annotations

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
from infra.environment import function_environment, grant_environment, secret_writer_environment
from infra.event_bus import LifecycleEventBus
from infra.functions import AdsAuthFunction
from infra.storage import Storage


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
            # One run at a time: two overlapping runs would queue the same advertisers twice.
            reserved_concurrent_executions=1,
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
                **secret_writer_environment(storage, creates_refresh_secrets=False),
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

        storage.grant_table_read_write(self.dispatcher)
        self.queue.grant_send_messages(self.dispatcher)
        event_bus.grant_publish(self.dispatcher)

        storage.grant_table_read_write(self.worker)
        storage.grant_client_secret_read(self.worker)
        storage.grant_refresh_secrets_read_write(self.worker)
        storage.grant_access_secrets_write(self.worker)
        self.alert_topic.grant_publish(self.worker)
        event_bus.grant_publish(self.worker)
        if config.ses_sender:
            self._grant_send_email(config.ses_sender)

    def _grant_send_email(self, sender: str) -> None:
        """``ses:SendEmail`` (re-consent invitations) on the sender's SES identity only: for an
        address, the address and its domain (IAM checks whichever of the two ops verified), and
        only with that address as From; for a domain, addresses of that domain."""
        _, at, domain = sender.rpartition("@")
        if at:
            identities, from_address = [sender, domain], {"StringEquals": {"ses:FromAddress": sender}}
        else:
            identities, from_address = [sender], {"StringLike": {"ses:FromAddress": f"*@{sender}"}}
        stack = Stack.of(self)
        iam.Grant.add_to_principal(
            grantee=self.worker,
            actions=["ses:SendEmail"],
            resource_arns=[
                stack.format_arn(service="ses", resource="identity", resource_name=identity)
                for identity in identities
            ],
            conditions=from_address,
        )

    def _schedule(self, minutes: int) -> None:
        every = Duration.minutes(minutes)
        # A run that cannot start before the next one is due is worthless: drop it rather than
        # let retries pile up behind the reserved concurrency of 1. What is dropped or fails is
        # recorded in the dispatcher DLQ (and alarmed on): the next run does the work anyway.
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
