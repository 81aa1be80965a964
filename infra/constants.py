"""Names and defaults shared by the constructs: change them here, nowhere else."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

SERVICE_NAME = "adsauth"

# Powertools comes from the AWS-managed layer, never from the asset. Keep this equal to the pin in
# requirements.txt (a test checks it). The layer is built per Python version and architecture;
# python3.14 is the newest Lambda runtime, and Powertools publishes its layer for it (SSM
# /aws/service/powertools/python/arm64/python3.14/<version>), so the functions run on it.
POWERTOOLS_VERSION = "3.37.0"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_LAYER_PARAMETER = (
    f"/aws/service/powertools/python/arm64/{LAMBDA_RUNTIME.name}/{POWERTOOLS_VERSION}"
)

# API Gateway gives up after 29 s; a function must answer (or fail) well before that.
API_FUNCTION_TIMEOUT = Duration.seconds(20)
API_GATEWAY_TIMEOUT_SECONDS = 29
FUNCTION_MEMORY_MB = 512
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

CONNECT_HANDLER = "adsauth.handlers.connect.handler"
CALLBACK_HANDLER = "adsauth.handlers.callback.handler"
DISPATCHER_HANDLER = "adsauth.handlers.dispatcher.handler"
WORKER_HANDLER = "adsauth.handlers.worker.handler"

# The refresher. A worker handles one SQS batch per invocation: one LwA refresh per advertiser plus
# the occasional profile listing, each bounded by the HTTP timeouts and retries in settings; a
# pack's job refreshes up to 100 advertisers, 10 at a time, and starts none in its last 40 seconds
# (adsauth.packs.PACK_MARGIN_SECONDS).
DISPATCHER_TIMEOUT = Duration.seconds(60)
WORKER_TIMEOUT = Duration.seconds(120)
REFRESH_BATCH_SIZE = 10
# AWS's advice for an SQS event source: visibility timeout at least six times the function timeout,
# so a message is not handed to a second worker while the first one (and its retries) still runs.
VISIBILITY_TIMEOUT_FACTOR = 6
# A message that failed this often goes to the DLQ (and raises the DLQ alarm).
REFRESH_MAX_RECEIVE_COUNT = 5
DLQ_RETENTION = Duration.days(14)  # the SQS maximum: time for ops to look and redrive
# An advertiser's refresh lease in the table: longer than a worker can run, so two workers never
# refresh the same advertiser at once, and short enough that a crashed worker's lease lapses
# before the next dispatch finds the token still due.
REFRESH_LEASE_SECONDS = 150  # and a pack's lease: adsauth.packs.PACK_LEASE_SECONDS
# Powertools metrics the handlers emit (namespace METRICS_NAMESPACE, dimension service=SERVICE_NAME).
# Alarms and the dashboard watch these names; a test checks the code emits them.
ONBOARDING_METRICS = ("OnboardingStarted", "OnboardingConnected", "OnboardingDeclined", "OnboardingFailed")
REFRESH_OK_METRIC = "RefreshOk"
REFRESH_FAILED_METRIC = "RefreshFailed"
REFRESH_ROTATED_METRIC = "RefreshRotated"
REFRESH_DISPATCHED_METRIC = "RefreshDispatched"
NEEDS_REAUTH_METRIC = "NeedsReauth"
# The worker counts refreshes that LwA answered with invalid_client: our client secret is wrong or
# rotated.
INVALID_CLIENT_METRIC = "LwaInvalidClient"
# The dispatcher: age of the oldest access token among the connected advertisers it found due.
OLDEST_TOKEN_AGE_METRIC = "OldestTokenAgeSeconds"
# The worker, on every refresh of a connected advertiser whose grant ends within
# GRANT_EXPIRING_DAYS and who has not completed a re-consent; and when a grant has ended.
GRANTS_EXPIRING_SOON_METRIC = "GrantsExpiringSoon"
GRANT_EXPIRED_METRIC = "GrantExpired"
GRANT_EXPIRING_DAYS = 7  # the worker's window (adsauth.settings grant_alarm_days; a test checks)

# Files of the adsauth package that are the ops CLI, not deployed code.
CLI_MODULES = frozenset({"cli.py", "__main__.py"})


# CloudWatch namespace of the functions' Powertools metrics. The API handlers fix it in code
# (Metrics(namespace=...)), the refresher's take it from POWERTOOLS_METRICS_NAMESPACE: both must be
# this (a test checks). One namespace for every stack: deploy one adsauth stack per account and
# region, or two stacks' alarms see each other's metrics (see docs/runbook.md, Prerequisites).
METRICS_NAMESPACE = SERVICE_NAME


def refresh_token_reader_path(stack_name: str) -> str:
    """IAM path of the roles that may read refresh tokens and the LwA client secret (callback and
    refresh worker). The secrets' resource policies deny everyone outside it; a path survives the
    roles being replaced, and the stack being destroyed and deployed again."""
    return f"/{SERVICE_NAME}/{stack_name}/refresh-token-readers/"


def client_secret_name(stack_name: str) -> str:
    """Secrets Manager name of the LwA client ({"client_id", "client_secret"}), set by ops."""
    return f"{SERVICE_NAME}/{stack_name}/lwa_client"


def event_bus_name(stack_name: str) -> str:
    """The stack's EventBridge bus, where the functions publish lifecycle events (source
    ``adsauth``); a fixed name, so downstream stacks can put rules on it by name."""
    return f"{SERVICE_NAME}-{stack_name}"


def advertiser_secret_prefix(stack_name: str) -> str:
    """Prefix of the per-advertiser secrets: ``<prefix>refresh/<id>`` and ``<prefix>access/<id>``."""
    return f"{SERVICE_NAME}/{stack_name}/advertisers/"
