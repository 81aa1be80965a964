"""Figure 6: what adsauth costs per advertiser and month, for each token layout with the same
model, from the resources the stack creates (``bench.inventory``), the call counts measured by
the other figures, the prices in ``bench.prices`` and the workload assumptions below (named, so
they can be argued with).

Fixed costs (a KMS key, the LwA client secret, alarms, the dashboard, custom metrics, the
dispatcher running every minute, SQS polling by the worker's event source) are shared by all
advertisers; per-advertiser costs (their secrets, refreshes, downstream reads) grow with them.
What differs between the layouts is measured (``bench.layouts``): the secrets there are (two per
advertiser; or two per pack, with the advertisers per pack and the share still in their own
secrets from the simulated day), and the calls per refresh (a pack's reads and writes are per
pack job, not per advertiser). Free tiers are ignored. One-time onboarding costs are reported apart.
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
# DynamoDB: items are under 1 KB; an advertiser item sits in two indexes (byExpiry, byKind) that
# copy every attribute, so a write to it writes both indexes too: three write units per write.
WRITE_UNITS_PER_WRITE = 3.0
AUDIT_EVENT_BYTES = 250
# The dispatcher's due query reads every index item of its window (the advertisers due within
# the lead and the pack alignment window) at full size: read units of 4 KB, half a unit each
# (eventually consistent). The window's share and the item's size come from the simulated day.
READ_UNIT_BYTES = 4096
ONBOARDING_API_REQUESTS = 3  # connect, callback, result page
SECRETS_PER_ADVERTISER = 2  # per-advertiser layout: one refresh-token secret and one access-token secret
SECRETS_PER_PACK = 2  # packed layout: one refresh-token and one access-token secret per pack
LAYOUTS = ("packed", "per_advertiser")  # the default first

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


def secrets(advertisers: int, m: dict, inv: dict) -> float:
    """The secrets there are: two per pack (``advertisers_per_pack``) for the advertisers in packs,
    two for each still in its own secrets (``own_secrets_share``), and the stack's own (the LwA
    client secret). Without ``advertisers_per_pack``: two per advertiser."""
    per_pack = m.get("advertisers_per_pack")
    if not per_pack:
        return advertisers * SECRETS_PER_ADVERTISER + inv["secrets"]
    own = advertisers * m.get("own_secrets_share", 0.0)
    return (math.ceil((advertisers - own) / per_pack) * SECRETS_PER_PACK + own * SECRETS_PER_ADVERTISER
            + inv["secrets"])


def monthly_cost(advertisers: int, m: dict, inv: dict) -> dict[str, float]:
    """Dollars per month for ``advertisers``, by item; ``m`` holds the measured inputs of one layout."""
    refreshes = advertisers * m["refreshes_per_advertiser_hour"] * HOURS_PER_MONTH
    per_refresh = _split(m["aws_calls_per_refresh"])
    per_dispatch = _split(m["aws_calls_per_idle_dispatch"])
    dispatches = MINUTES_PER_MONTH / m["refresh_schedule_minutes"]
    # the worker: a message is one advertiser's job, or one pack's job of ``refreshes_per_job``
    # members refreshed ``records_at_once`` at a time; an invocation takes a batch of up to 10
    # messages, ``records_at_once`` of them at once
    per_job = m.get("refreshes_per_job", 1.0)
    jobs = refreshes / per_job
    batch = max(1.0, min(10.0, jobs / dispatches))
    invocations = jobs / batch
    refresh_seconds = LWA_CALL_SECONDS + per_refresh["aws_calls"] * AWS_CALL_SECONDS
    job_seconds = math.ceil(per_job / m["records_at_once"]) * refresh_seconds
    batch_seconds = math.ceil(batch / m["records_at_once"]) * job_seconds
    reads_jobs = advertisers * DOWNSTREAM_JOBS_PER_ADVERTISER_DAY * HOURS_PER_MONTH / 24
    downstream_secret_calls = reads_jobs * max(1.0, m["secrets_calls_per_1000_reads"] * READS_PER_DOWNSTREAM_JOB / 1000)
    window_read_units = advertisers * m.get("due_window_share", 0.0) * m.get("advertiser_item_bytes", 0) \
        / READ_UNIT_BYTES * 0.5

    secrets_calls = refreshes * per_refresh["secrets"] + downstream_secret_calls
    kms_calls = refreshes * per_refresh["secrets_kms"] + downstream_secret_calls
    gb = inv["worker_memory_mb"] / 1024
    log_gb = ((invocations + dispatches) * LOG_BYTES_PER_INVOCATION + refreshes * LOG_BYTES_PER_REFRESH) / 1e9
    return {
        "secrets_storage": secrets(advertisers, m, inv) * p.SECRET_MONTH,
        "secrets_calls": secrets_calls * p.SECRETS_API_CALL,
        "kms": inv["kms_keys"] * p.KMS_KEY_MONTH + kms_calls * p.KMS_REQUEST,
        "lambda_worker": invocations * (p.LAMBDA_REQUEST + gb * batch_seconds * p.LAMBDA_ARM_GB_SECOND),
        "lambda_dispatcher": dispatches * (p.LAMBDA_REQUEST + inv["dispatcher_memory_mb"] / 1024
                                           * DISPATCHER_RUN_SECONDS * p.LAMBDA_ARM_GB_SECOND),
        "dynamodb": (refreshes * per_refresh["ddb_writes"] + dispatches * per_dispatch["ddb_writes"])
        * WRITE_UNITS_PER_WRITE * p.DYNAMODB_WRITE_REQUEST_UNIT
        + (refreshes * per_refresh["ddb_reads"] + dispatches * (per_dispatch["ddb_reads"] + window_read_units))
        * p.DYNAMODB_READ_REQUEST_UNIT
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


def alternatives(advertisers: int, m: dict, inv: dict, packed: dict | None = None) -> dict[str, float]:
    """Per advertiser and month under other token storage designs, everything else equal: ``m``
    is the per-advertiser layout's inputs, ``packed`` the packed layout's (implemented)."""
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
    out = {"per_advertiser: two secrets each (token_layout per_advertiser, implemented)": total / advertisers}
    if packed is not None:
        out["packed: two secrets per pack (token_layout packed, implemented, the default)"] = \
            sum(monthly_cost(advertisers, packed, inv).values()) / advertisers
    out.update({
        "refresh_secret + access_token_in_dynamodb_kms": (total - two_secrets / 2 + access_in_table
                                                          - saved_access_calls) / advertisers,
        "refresh_tokens_25_per_secret + access_in_dynamodb_kms": (total - two_secrets
                                                                  + math.ceil(advertisers / per_secret_tokens) * p.SECRET_MONTH
                                                                  + access_in_table - saved_access_calls) / advertisers,
        "ssm_securestring_standard (≤10,000 parameters)": (total - two_secrets + advertisers * 2
                                                            * p.SSM_STANDARD_PARAMETER_MONTH) / advertisers,
        "ssm_securestring_advanced": (total - two_secrets + advertisers * 2 * p.SSM_ADVANCED_PARAMETER_MONTH)
        / advertisers,
    })
    return out


def assumptions() -> dict:
    """The workload and platform assumptions of the model, by name (for the results and the README)."""
    return {
        "downstream_jobs_per_advertiser_day": DOWNSTREAM_JOBS_PER_ADVERTISER_DAY,
        "downstream_reads_per_job": READS_PER_DOWNSTREAM_JOB,
        "downstream": "each job in a process whose cache starts empty: one GetSecretValue (and one KMS Decrypt) "
                      "per job, an advertiser's own secret or its pack's alike",
        "lwa_call_seconds": LWA_CALL_SECONDS,
        "aws_call_seconds": AWS_CALL_SECONDS,
        "dispatcher_run_seconds": DISPATCHER_RUN_SECONDS,
        "event_source_receives_per_minute": EVENT_SOURCE_RECEIVES_PER_MINUTE,
        "write_units_per_write": WRITE_UNITS_PER_WRITE,
        "log_bytes_per_invocation": LOG_BYTES_PER_INVOCATION,
        "log_bytes_per_refresh": LOG_BYTES_PER_REFRESH,
        "traced_share": TRACED_SHARE,
        "secrets_per_advertiser (per_advertiser layout)": SECRETS_PER_ADVERTISER,
        "secrets_per_pack (packed layout)": SECRETS_PER_PACK,
        "free_tiers": "ignored",
    }


def costs(by_layout: dict[str, dict], inv: dict, sizes=(100, 1000, 10000)) -> dict:
    """``by_layout``: each layout's measured inputs. Returns each layout's cost figures under its
    name, and the details."""
    out: dict = {}
    for layout, m in by_layout.items():
        out[layout] = {f"cost_per_advertiser_month_usd_{n}": round(sum(monthly_cost(n, m, inv).values()) / n, 4)
                       for n in sizes}
    any_layout = next(iter(by_layout.values()))
    out["details"] = {
        "monthly_usd_by_item": {layout: {n: {k: round(v, 2) for k, v in monthly_cost(n, m, inv).items()} for n in sizes}
                                for layout, m in by_layout.items()},
        "secrets": {layout: {n: round(secrets(n, m, inv), 1) for n in sizes} for layout, m in by_layout.items()},
        "fixed_monthly_usd": {layout: round(sum(monthly_cost(0, m, inv).values()), 2) for layout, m in by_layout.items()},
        "one_time_onboarding_usd": round(one_time_onboarding(any_layout), 6),
        "alternatives_per_advertiser_month_usd_1000": {
            k: round(v, 4) for k, v in alternatives(1000, by_layout.get("per_advertiser", any_layout), inv,
                                                    by_layout.get("packed")).items()},
        "assumptions": assumptions(),
        "prices_read_on": p.PRICES_READ_ON,
        "inputs": by_layout,
    }
    return out
