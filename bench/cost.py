"""Figure 6: what adsauth costs per advertiser and month, from the resources the stack creates
(``bench.inventory``), the call counts measured by the other figures, the prices in
``bench.prices`` and the workload assumptions below (named, so they can be argued with).

Fixed costs (a KMS key, the LwA client secret, alarms, the dashboard, custom metrics, the
dispatcher running every minute, SQS polling by the worker's event source) are shared by all
advertisers; per-advertiser costs (two secrets, refreshes, downstream reads) grow with them.
Free tiers are ignored. One-time onboarding costs are reported apart.
"""

from __future__ import annotations

import math

from bench import prices as p

HOURS_PER_MONTH = 730
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60

# --- workload and platform assumptions ---------------------------------------------------------
# Downstream: an hourly reporting job per advertiser, each in a process whose cache starts empty;
# within a job, reads come from the client's cache (figure 4 measures how many reach Secrets
# Manager per 1,000 reads).
DOWNSTREAM_JOBS_PER_ADVERTISER_DAY = 24
READS_PER_DOWNSTREAM_JOB = 1000
# Lambda: how long a refresh keeps a worker busy in AWS (LwA's token endpoint answers in a few
# hundred ms; the table and Secrets Manager calls take ~10 ms each), and a dispatcher run.
LWA_CALL_SECONDS = 0.3
AWS_CALL_SECONDS = 0.01
DISPATCHER_RUN_SECONDS = 0.15
MIN_BILLED_SECONDS = 0.001
# Lambda's SQS event source long-polls with 5 pollers, each about 3 receives a minute when idle.
EVENT_SOURCE_RECEIVES_PER_MINUTE = 15
# Log bytes: the platform's START/END/REPORT lines per invocation, one JSON line per refresh, the
# EMF metrics blob per invocation.
LOG_BYTES_PER_INVOCATION = 350 + 300
LOG_BYTES_PER_REFRESH = 450
# X-Ray samples the first request each second and 5% after: at these rates nearly every
# invocation is traced.
TRACED_SHARE = 1.0
# The Powertools metrics the handlers emit (one custom metric each, dimension "service").
CUSTOM_METRICS = (
    "OnboardingStarted", "OnboardingConnected", "OnboardingDeclined", "OnboardingFailed",
    "CallbackRejected", "RefreshDispatched", "RefreshOk", "RefreshFailed", "RefreshRotated",
    "NeedsReauth", "LwaInvalidClient", "OldestTokenAgeSeconds",
)
# DynamoDB: items are under 1 KB; an advertiser item sits in two indexes (byExpiry, byKind), so
# a write that moves its deadline also writes an index: about two write units per write.
WRITE_UNITS_PER_WRITE = 2.0
AUDIT_EVENT_BYTES = 250
ONBOARDING_API_REQUESTS = 3  # connect, callback, result page
SECRETS_PER_ADVERTISER = 2  # one refresh-token secret and one access-token secret

DYNAMODB_READS = ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
SECRETS_DATA_CALLS = ("GetSecretValue", "PutSecretValue", "CreateSecret")  # these use the KMS key


def _split(calls: dict[str, float]) -> dict[str, float]:
    """Per-service totals of a ``{"service:Operation": n}`` count."""
    out = {"ddb_reads": 0.0, "ddb_writes": 0.0, "secrets": 0.0, "secrets_kms": 0.0, "sqs": 0.0, "sns": 0.0,
           "aws_calls": 0.0}
    for key, n in calls.items():
        service, operation = key.split(":", 1)
        out["aws_calls"] += n
        if service == "dynamodb":
            out["ddb_reads" if operation in DYNAMODB_READS else "ddb_writes"] += n
        elif service == "secretsmanager":
            out["secrets"] += n
            out["secrets_kms"] += n if operation in SECRETS_DATA_CALLS else 0
        elif service in ("sqs", "sns"):
            out[service] += n
    return out


def monthly_cost(advertisers: int, m: dict, inv: dict) -> dict[str, float]:
    """Dollars per month for ``advertisers``, by item; ``m`` holds the measured inputs."""
    refreshes = advertisers * m["refreshes_per_advertiser_hour"] * HOURS_PER_MONTH
    per_refresh = _split(m["aws_calls_per_refresh"])
    per_dispatch = _split(m["aws_calls_per_idle_dispatch"])
    dispatches = MINUTES_PER_MONTH / m["refresh_schedule_minutes"]
    # the worker: batches of up to 10; a batch takes ceil(records / records_at_once) refresh times
    due_per_run = advertisers * m["refreshes_per_advertiser_hour"] * m["refresh_schedule_minutes"] / 60
    batch = max(1.0, min(10.0, due_per_run))
    invocations = refreshes / batch
    refresh_seconds = LWA_CALL_SECONDS + per_refresh["aws_calls"] * AWS_CALL_SECONDS
    batch_seconds = math.ceil(batch / m["records_at_once"]) * refresh_seconds
    reads_jobs = advertisers * DOWNSTREAM_JOBS_PER_ADVERTISER_DAY * HOURS_PER_MONTH / 24
    downstream_secret_calls = reads_jobs * max(1.0, m["secrets_calls_per_1000_reads"] * READS_PER_DOWNSTREAM_JOB / 1000)

    secrets_calls = refreshes * per_refresh["secrets"] + downstream_secret_calls
    kms_calls = refreshes * per_refresh["secrets_kms"] + downstream_secret_calls
    gb = inv["worker_memory_mb"] / 1024
    log_gb = ((invocations + dispatches) * LOG_BYTES_PER_INVOCATION + refreshes * LOG_BYTES_PER_REFRESH) / 1e9
    return {
        "secrets_storage": (advertisers * SECRETS_PER_ADVERTISER + inv["secrets"]) * p.SECRET_MONTH,
        "secrets_calls": secrets_calls * p.SECRETS_API_CALL,
        "kms": inv["kms_keys"] * p.KMS_KEY_MONTH + kms_calls * p.KMS_REQUEST,
        "lambda_worker": invocations * (p.LAMBDA_REQUEST + gb * batch_seconds * p.LAMBDA_ARM_GB_SECOND),
        "lambda_dispatcher": dispatches * (p.LAMBDA_REQUEST + inv["dispatcher_memory_mb"] / 1024
                                           * DISPATCHER_RUN_SECONDS * p.LAMBDA_ARM_GB_SECOND),
        "dynamodb": (refreshes * per_refresh["ddb_writes"] + dispatches * per_dispatch["ddb_writes"])
        * WRITE_UNITS_PER_WRITE * p.DYNAMODB_WRITE_REQUEST_UNIT
        + (refreshes * per_refresh["ddb_reads"] + dispatches * per_dispatch["ddb_reads"]) * p.DYNAMODB_READ_REQUEST_UNIT
        + refreshes * AUDIT_EVENT_BYTES / 1e9 * p.DYNAMODB_GB_MONTH,
        "sqs": (refreshes * per_refresh["sqs"] + invocations  # a delete batch per invocation
                + MINUTES_PER_MONTH * EVENT_SOURCE_RECEIVES_PER_MINUTE) * p.SQS_REQUEST,
        "cloudwatch_logs": log_gb * (p.LOGS_INGESTED_GB + p.LOGS_STORED_GB_MONTH),
        "cloudwatch_alarms_dashboard_metrics": inv["alarms"] * p.ALARM_MONTH + inv["dashboards"] * p.DASHBOARD_MONTH
        + len(CUSTOM_METRICS) * p.CUSTOM_METRIC_MONTH,
        "xray": (invocations + dispatches) * TRACED_SHARE * p.XRAY_TRACE_RECORDED if inv["xray_tracing"] else 0.0,
    }


def one_time_onboarding(m: dict) -> float:
    calls = _split(m["aws_calls_per_callback"])
    return (ONBOARDING_API_REQUESTS * p.REST_API_REQUEST + calls["secrets"] * p.SECRETS_API_CALL
            + calls["secrets_kms"] * p.KMS_REQUEST + calls["ddb_writes"] * WRITE_UNITS_PER_WRITE
            * p.DYNAMODB_WRITE_REQUEST_UNIT + calls["ddb_reads"] * p.DYNAMODB_READ_REQUEST_UNIT)


def alternatives(advertisers: int, m: dict, inv: dict) -> dict[str, float]:
    """Per advertiser and month under other token storage designs, everything else equal."""
    items = monthly_cost(advertisers, m, inv)
    total = sum(items.values())
    two_secrets = advertisers * SECRETS_PER_ADVERTISER * p.SECRET_MONTH
    refreshes = advertisers * m["refreshes_per_advertiser_hour"] * HOURS_PER_MONTH
    reads = advertisers * DOWNSTREAM_JOBS_PER_ADVERTISER_DAY * HOURS_PER_MONTH / 24
    # access tokens as KMS-encrypted DynamoDB attributes: one Encrypt per refresh, one Decrypt and
    # one read per downstream job instead of the access-token secret's calls
    access_in_table = refreshes * p.KMS_REQUEST + reads * (p.KMS_REQUEST + p.DYNAMODB_READ_REQUEST_UNIT)
    saved_access_calls = (refreshes + reads) * (p.SECRETS_API_CALL + p.KMS_REQUEST)
    per_secret_tokens = 25  # refresh tokens (≤ 2 KB each) that fit one 64 KB secret value
    return {
        "two_secrets_per_advertiser (current)": total / advertisers,
        "refresh_secret + access_token_in_dynamodb_kms": (total - two_secrets / 2 + access_in_table
                                                          - saved_access_calls) / advertisers,
        "refresh_tokens_25_per_secret + access_in_dynamodb_kms": (total - two_secrets
                                                                  + math.ceil(advertisers / per_secret_tokens) * p.SECRET_MONTH
                                                                  + access_in_table - saved_access_calls) / advertisers,
        "ssm_securestring_standard (≤10,000 parameters)": (total - two_secrets + advertisers * 2
                                                            * p.SSM_STANDARD_PARAMETER_MONTH) / advertisers,
        "ssm_securestring_advanced": (total - two_secrets + advertisers * 2 * p.SSM_ADVANCED_PARAMETER_MONTH)
        / advertisers,
    }


def costs(m: dict, inv: dict, sizes=(100, 1000, 10000)) -> dict:
    out = {}
    for n in sizes:
        out[f"cost_per_advertiser_month_usd_{n}"] = round(sum(monthly_cost(n, m, inv).values()) / n, 4)
    breakdown = {n: {k: round(v, 2) for k, v in monthly_cost(n, m, inv).items()} for n in sizes}
    out["details"] = {
        "monthly_usd_by_item": breakdown,
        "fixed_monthly_usd": round(sum(monthly_cost(0, m, inv).values()), 2),  # with no advertiser
        "one_time_onboarding_usd": round(one_time_onboarding(m), 6),
        "alternatives_per_advertiser_month_usd_1000": {k: round(v, 4) for k, v in alternatives(1000, m, inv).items()},
        "prices_read_on": p.PRICES_READ_ON,
        "inputs": m,
    }
    return out
