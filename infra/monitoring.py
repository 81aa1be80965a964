"""Alerts, alarms and the dashboard: everything ops watch, in one place.

``AlertTopic`` is the SNS topic every alarm notifies (and the refresh worker publishes its
per-advertiser alerts to), with an optional email subscription (``alert_email``).

``Monitoring`` defines the alarms and the dashboard. Each alarm is named ``<stack>-<slug>``; the
slug is a heading in docs/runbook.md, section "Alarms", which says what the alarm
means and what to do (a test checks that every alarm has its entry).

| slug                       | fires when                                                        |
|----------------------------|-------------------------------------------------------------------|
| ``refresh-failing``        | ≥ 5 refresh attempts failed (LwA/Ads errors, bugs) in 15 minutes  |
| ``refresh-dlq-not-empty``  | a refresh job failed 5 times and waits in the refresh DLQ         |
| ``dispatcher-failing``     | the dispatcher failed in two consecutive 5-minute periods         |
| ``dispatcher-dlq-not-empty`` | a dispatcher run failed or was dropped (dispatcher DLQ)         |
| ``lwa-rejects-client``     | LwA answered ``invalid_client``: client id/secret wrong or rotated|
| ``api-5xx``                | the API answered ≥ 3 server errors in 5 minutes                   |
| ``token-expired``          | a connected advertiser's access token is older than its lifetime  |
| ``grant-expiring``         | a grant ends within 7 days and its re-consent is not completed    |

``GrantExpired`` (a grant ended: its advertiser must authorize again) has no alarm of its own:
``grant-expiring`` fired for that advertiser during the week before. It is on the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass

from adsauth.settings import ACCESS_TOKEN_SECONDS
from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.api import PublicApi
from infra.constants import (
    GRANT_EXPIRED_METRIC,
    GRANT_EXPIRING_DAYS,
    GRANTS_EXPIRING_SOON_METRIC,
    INVALID_CLIENT_METRIC,
    NEEDS_REAUTH_METRIC,
    OLDEST_TOKEN_AGE_METRIC,
    ONBOARDING_METRICS,
    REFRESH_DISPATCHED_METRIC,
    REFRESH_FAILED_METRIC,
    REFRESH_MAX_RECEIVE_COUNT,
    REFRESH_OK_METRIC,
    REFRESH_ROTATED_METRIC,
    METRICS_NAMESPACE,
    SERVICE_NAME,
)
from infra.refresher import Refresher

REFRESH_FAILURES_THRESHOLD = 5  # failed attempts in REFRESH_FAILURES_PERIOD
REFRESH_FAILURES_PERIOD = Duration.minutes(15)
API_5XX_THRESHOLD = 3  # server errors in 5 minutes
TOKEN_AGE_MIN_PERIOD_MINUTES = 10
# The worker counts an expiring grant on each refresh of its advertiser, about every 48 minutes:
# an hour always holds one.
GRANT_EXPIRING_PERIOD = Duration.hours(1)
ALARM_SLUGS = (
    "refresh-failing",
    "refresh-dlq-not-empty",
    "dispatcher-failing",
    "dispatcher-dlq-not-empty",
    "lwa-rejects-client",
    "api-5xx",
    "token-expired",
    "grant-expiring",
)


class AlertTopic(Construct):
    """The alert topic, admitting this account's CloudWatch alarms, TLS only."""

    def __init__(self, scope: Construct, construct_id: str, *, alert_email: str | None) -> None:
        super().__init__(scope, construct_id)
        # Not KMS-encrypted on purpose: alerts carry advertiser ids and error kinds, never a
        # token, and CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key.
        self.topic = sns.Topic(self, "AlertTopic", display_name="adsauth alerts", enforce_ssl=True)
        # With a topic policy in place, CloudWatch alarms of this account must be allowed by name.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
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
            self.topic.add_subscription(subscriptions.EmailSubscription(alert_email))


@dataclass(frozen=True)
class AlarmSpec:
    slug: str
    summary: str  # what happened, for the alarm description and the notification
    metric: cloudwatch.IMetric
    threshold: float
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = None


class Monitoring(Construct):
    """Every alarm (to the alert topic, on alarm and on recovery) and the operations dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        api: PublicApi,
        refresher: Refresher,
        refresh_schedule_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        stack_name = Stack.of(self).stack_name
        self.namespace = METRICS_NAMESPACE
        self.api = api
        self.refresher = refresher
        # The dispatcher finds a stuck advertiser again after its snooze (a few minutes), and only
        # on a run: the period must span at least two runs.
        self.token_age_period = Duration.minutes(
            max(TOKEN_AGE_MIN_PERIOD_MINUTES, 2 * refresh_schedule_minutes)
        )
        action = cw_actions.SnsAction(topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for spec in self._specs():
            alarm = cloudwatch.Alarm(
                self,
                spec.slug,
                alarm_name=f"{stack_name}-{spec.slug}",
                alarm_description=(
                    f"adsauth {stack_name}: {spec.summary}. Runbook: docs/runbook.md, "
                    f'"Alarms", entry {spec.slug}.'
                ),
                metric=spec.metric,
                threshold=spec.threshold,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # No data means nothing happened (no failure, nothing in a DLQ, no due token).
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms[spec.slug] = alarm
        self.dashboard = self._dashboard(f"{stack_name}-operations")

    # --- metrics ---------------------------------------------------------------------------
    def metric(self, name: str, statistic: str = cloudwatch.Stats.SUM, period: Duration | None = None):
        """A Powertools metric of the functions (namespace METRICS_NAMESPACE, dimension service)."""
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={"service": SERVICE_NAME},
            statistic=statistic,
            period=period or Duration.minutes(5),
        )

    def _specs(self) -> list[AlarmSpec]:
        refresher, stage = self.refresher, self.api.rest_api.deployment_stage
        return [
            AlarmSpec(
                "refresh-failing",
                f"at least {REFRESH_FAILURES_THRESHOLD} token refreshes failed in 15 minutes "
                "(LwA or the Ads API unavailable, or an error in the worker); SQS retries them",
                self.metric(REFRESH_FAILED_METRIC, period=REFRESH_FAILURES_PERIOD),
                REFRESH_FAILURES_THRESHOLD,
            ),
            AlarmSpec(
                "refresh-dlq-not-empty",
                f"refresh jobs failed {REFRESH_MAX_RECEIVE_COUNT} times and wait in the refresh DLQ",
                refresher.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
                ),
                1,
            ),
            AlarmSpec(
                "dispatcher-failing",
                "the refresh dispatcher failed in two consecutive 5-minute periods; tokens are "
                "not being refreshed",
                refresher.dispatcher.metric_errors(period=Duration.minutes(5)),
                1,
                evaluation_periods=2,
                datapoints_to_alarm=2,
            ),
            AlarmSpec(
                "dispatcher-dlq-not-empty",
                "a dispatcher run failed or was dropped and its record waits in the dispatcher DLQ",
                refresher.dispatcher_dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
                ),
                1,
            ),
            AlarmSpec(
                "lwa-rejects-client",
                "Login with Amazon answered invalid_client: the LwA client id or secret is wrong "
                "or was rotated; refreshes are paused",
                self.metric(INVALID_CLIENT_METRIC),
                1,
            ),
            AlarmSpec(
                "api-5xx",
                f"the API answered at least {API_5XX_THRESHOLD} server errors in 5 minutes",
                stage.metric_server_error(period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM),
                API_5XX_THRESHOLD,
            ),
            AlarmSpec(
                "token-expired",
                "a connected advertiser's access token is older than its lifetime "
                f"({ACCESS_TOKEN_SECONDS} s): it expired without being refreshed",
                self.metric(
                    OLDEST_TOKEN_AGE_METRIC, cloudwatch.Stats.MAXIMUM, period=self.token_age_period
                ),
                ACCESS_TOKEN_SECONDS,
            ),
            AlarmSpec(
                "grant-expiring",
                f"an advertiser's Amazon Ads grant ends within {GRANT_EXPIRING_DAYS} days and the "
                "re-consent invitations have not been completed",
                self.metric(GRANTS_EXPIRING_SOON_METRIC, period=GRANT_EXPIRING_PERIOD),
                1,
            ),
        ]

    # --- dashboard -------------------------------------------------------------------------
    def _graph(self, title: str, metrics: list, *, width: int = 8, **kwargs) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(title=title, left=metrics, width=width, height=6, **kwargs)

    def _dashboard(self, name: str) -> cloudwatch.Dashboard:
        refresher, api = self.refresher, self.api
        stage = api.rest_api.deployment_stage
        functions = {
            "connect": api.connect_function,
            "callback": api.callback_function,
            "dispatcher": refresher.dispatcher,
            "worker": refresher.worker,
        }
        hour = Duration.hours(1)
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=name)
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms (runbook: docs/runbook.md, Alarms)",
                alarms=list(self.alarms.values()),
                width=24,
                height=3,
            )
        )
        dashboard.add_widgets(
            self._graph(
                "Onboarding (per hour)",
                [self.metric(m, period=hour) for m in ONBOARDING_METRICS],
            ),
            self._graph(
                "Refreshes (per 5 minutes)",
                [
                    self.metric(m)
                    for m in (
                        REFRESH_DISPATCHED_METRIC,
                        REFRESH_OK_METRIC,
                        REFRESH_FAILED_METRIC,
                        REFRESH_ROTATED_METRIC,
                    )
                ],
            ),
            self._graph(
                "Re-authorization needed, grants expiring or expired / LwA rejects our client",
                [
                    self.metric(NEEDS_REAUTH_METRIC, period=hour),
                    self.metric(GRANTS_EXPIRING_SOON_METRIC, period=hour),
                    self.metric(GRANT_EXPIRED_METRIC, period=hour),
                    self.metric(INVALID_CLIENT_METRIC),
                ],
            ),
        )
        dashboard.add_widgets(
            self._graph(
                "Oldest access token age (s)",
                [self.metric(OLDEST_TOKEN_AGE_METRIC, cloudwatch.Stats.MAXIMUM, period=self.token_age_period)],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=ACCESS_TOKEN_SECONDS, label="token lifetime")
                ],
            ),
            self._graph(
                "Refresh queue and DLQs (messages)",
                [
                    refresher.queue.metric_approximate_number_of_messages_visible(),
                    refresher.queue.metric_approximate_age_of_oldest_message(),
                    refresher.dead_letter_queue.metric_approximate_number_of_messages_visible(),
                    refresher.dispatcher_dead_letter_queue.metric_approximate_number_of_messages_visible(),
                ],
            ),
            self._graph(
                "API requests and errors",
                [
                    stage.metric_count(statistic=cloudwatch.Stats.SUM),
                    stage.metric_client_error(statistic=cloudwatch.Stats.SUM),
                    stage.metric_server_error(statistic=cloudwatch.Stats.SUM),
                ],
                right=[stage.metric_latency(statistic=cloudwatch.Stats.percentile(90))],
            ),
        )
        dashboard.add_widgets(
            self._graph(
                "Function errors",
                [fn.metric_errors(label=name) for name, fn in functions.items()],
            ),
            self._graph(
                "Function throttles",
                [fn.metric_throttles(label=name) for name, fn in functions.items()],
            ),
            self._graph(
                "Function duration p90 (ms)",
                [
                    fn.metric_duration(label=name, statistic=cloudwatch.Stats.percentile(90))
                    for name, fn in functions.items()
                ],
            ),
        )
        if api.firewall is not None:
            acl_metric = api.firewall.metric_name
            dashboard.add_widgets(
                self._graph(
                    "WAF requests",
                    [
                        cloudwatch.Metric(
                            namespace="AWS/WAFV2",
                            metric_name=name,
                            dimensions_map={"WebACL": acl_metric, "Rule": "ALL", "Region": Aws.REGION},
                            statistic=cloudwatch.Stats.SUM,
                        )
                        for name in ("AllowedRequests", "BlockedRequests")
                    ],
                    width=24,
                )
            )
        return dashboard
