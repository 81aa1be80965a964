"""The token refresher: a schedule, a dispatcher, a queue, bounded workers, a DLQ and alerts.

```
EventBridge rate(N minutes) ─► dispatcher (reserved concurrency 1)
    finds advertisers whose access token is due (index byExpiry) ─► refresh queue
refresh queue ─► worker (batches of 10, at most ``refresh_concurrency`` at once)
    refresh token at LwA → new secrets → profiles when their cadence is due
    a message that fails 5 times ─► DLQ ─► alarm ─► alert topic ─► ``alert_email``
alarms on the alert topic: DLQ not empty, dispatcher failing, LwA refusing our client
```

The dispatcher never touches a secret. Only the worker reads refresh tokens and the LwA client
secret; it stores access tokens without being able to read them back.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import AdsAuthConfig
from infra.constants import (
    DISPATCHER_HANDLER,
    DISPATCHER_TIMEOUT,
    DLQ_RETENTION,
    INVALID_CLIENT_METRIC,
    REFRESH_BATCH_SIZE,
    REFRESH_LEASE_SECONDS,
    REFRESH_MAX_RECEIVE_COUNT,
    SERVICE_NAME,
    VISIBILITY_TIMEOUT_FACTOR,
    WORKER_HANDLER,
    WORKER_TIMEOUT,
)
from infra.environment import function_environment
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
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
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
        self.alert_topic = self._alert_topic(config.alert_email)

        environment = {
            **function_environment(config, storage, public_base_url),
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
            code=code,
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
            code=code,
            layers=layers,
            environment=environment,
            timeout=WORKER_TIMEOUT,
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

        storage.grant_table_read_write(self.worker)
        storage.grant_client_secret_read(self.worker)
        storage.grant_refresh_secrets_read_write(self.worker)
        storage.grant_access_secrets_write(self.worker)
        self.alert_topic.grant_publish(self.worker)

        self._alarms()

    def _schedule(self, minutes: int) -> None:
        every = Duration.minutes(minutes)
        # A run that cannot start before the next one is due is worthless: drop it rather than
        # let retries pile up behind the reserved concurrency of 1.
        max_age = Duration.seconds(max(60, every.to_seconds()))
        self.dispatcher.configure_async_invoke(retry_attempts=0, max_event_age=max_age)
        events.Rule(
            self,
            "Schedule",
            description="adsauth: run the refresh dispatcher",
            schedule=events.Schedule.rate(every),
            targets=[targets.LambdaFunction(self.dispatcher, retry_attempts=2, max_event_age=max_age)],
        )

    def _alert_topic(self, alert_email: str | None) -> sns.Topic:
        # Not KMS-encrypted on purpose: alerts carry advertiser ids and error kinds, never a token,
        # and CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key.
        topic = sns.Topic(self, "AlertTopic", display_name="adsauth alerts", enforce_ssl=True)
        # With a topic policy in place, CloudWatch alarms of this account must be allowed by name.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": Stack.of(self).format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        if alert_email:
            topic.add_subscription(subscriptions.EmailSubscription(alert_email))
        return topic

    def _alarms(self) -> None:
        action = cw_actions.SnsAction(self.alert_topic)
        dlq_alarm = cloudwatch.Alarm(
            self,
            "RefreshDlqNotEmpty",
            alarm_description=(
                "adsauth: refresh messages failed 5 times and wait in the DLQ; look at the worker's "
                "logs, fix the cause, then redrive the DLQ"
            ),
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        dispatcher_alarm = cloudwatch.Alarm(
            self,
            "DispatcherFailing",
            alarm_description=(
                "adsauth: the refresh dispatcher has failed for 10 minutes; no token is being "
                "refreshed. Look at the dispatcher's logs"
            ),
            metric=self.dispatcher.metric_errors(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # Security requirement 9: invalid_client is a platform problem (wrong or rotated client
        # secret), not an advertiser's; ops must act before any token expires.
        invalid_client_alarm = cloudwatch.Alarm(
            self,
            "LwaRejectsClient",
            alarm_description=(
                "adsauth: LwA answered invalid_client; the refresher pauses. Put the current LwA "
                "client secret in Secrets Manager (ClientSecretName output)"
            ),
            metric=cloudwatch.Metric(
                namespace=SERVICE_NAME,
                metric_name=INVALID_CLIENT_METRIC,
                dimensions_map={"service": SERVICE_NAME},
                period=Duration.minutes(5),
                statistic=cloudwatch.Stats.SUM,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (dlq_alarm, dispatcher_alarm, invalid_client_alarm):
            alarm.add_alarm_action(action)
