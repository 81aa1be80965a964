"""The benchmark harness (``make bench``) keeps working: a tiny run in a fresh interpreter writes
results with every figure of issue 5. Only the shape is checked, never a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cost, harness, inventory

REPO = Path(__file__).resolve().parents[2]
FIGURES = {
    "onboarding_vs_sequential_ratio", "refreshes_per_advertiser_hour", "min_remaining_validity_minutes",
    "refresh_throughput_speedup", "refresh_lost", "refresh_duplicated", "secrets_calls_per_1000_reads",
    "cached_read_p50_us", "cached_read_p99_us", "cold_import_ms_max", "asset_size_mb_max",
    "cost_per_advertiser_month_usd_100", "cost_per_advertiser_month_usd_1000", "cost_per_advertiser_month_usd_10000",
}
METADATA = {"goals_missed", "size", "generated_at", "bench_seconds", "machine", "details"}


def shape_problems(results: dict) -> list[str]:
    problems = []
    if set(results) != FIGURES | METADATA:
        problems.append(f"keys differ: {sorted(set(results) ^ (FIGURES | METADATA))}")
    for key in FIGURES & set(results):
        value = results[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"{key} is not a non-negative number: {value!r}")
    for key in ("refresh_lost", "refresh_duplicated"):
        if not isinstance(results.get(key), int):
            problems.append(f"{key} is not a count")
    if not set(results.get("goals_missed", [])) <= FIGURES:
        problems.append("goals_missed names unknown figures")
    if not {"arch", "cpu", "cores"} <= set(results.get("machine", {})):
        problems.append("the machine is not described")
    return problems


@pytest.mark.slow
def test_a_tiny_run_writes_every_figure(tmp_path):
    out = tmp_path / "results.json"
    # a clean environment: nothing of the session's local stack (AWS endpoint, table name...) leaks in
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    done = subprocess.run([sys.executable, "-m", "bench", "--size", "tiny", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert shape_problems(results) == []
    assert results["size"] == "tiny"
    assert set(results["details"]["cost"]["alternatives_per_advertiser_month_usd_1000"])
    for key in FIGURES:  # the table shows every figure
        assert key in done.stdout


def test_the_committed_results_have_the_same_shape():
    results = json.loads((REPO / "bench" / "results.json").read_text())
    assert shape_problems(results) == []
    assert results["size"] == "full"


def test_the_harness_knows_a_goal_for_exactly_the_issues_figures():
    assert set(harness.GOALS) == FIGURES
    assert harness.met("refresh_throughput_speedup", 16) and not harness.met("cold_import_ms_max", 301)
    assert harness.met("secrets_calls_per_1000_reads", 5) is None


def test_resources_are_counted_from_a_template():
    template = {"Resources": {
        "Key": {"Type": "AWS::KMS::Key"},
        "Alarm1": {"Type": "AWS::CloudWatch::Alarm"}, "Alarm2": {"Type": "AWS::CloudWatch::Alarm"},
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"GlobalSecondaryIndexes": [{}, {}]}},
        "Worker": {"Type": "AWS::Lambda::Function", "Properties": {
            "Handler": "adsauth.handlers.worker.handler", "MemorySize": 1024, "TracingConfig": {"Mode": "Active"}}},
    }}
    counts = inventory.count_resources(template)
    assert (counts["kms_keys"], counts["alarms"], counts["table_indexes"], counts["functions"]) == (1, 2, 2, 1)
    assert counts["worker_memory_mb"] == 1024 and counts["xray_tracing"] is True
    assert set(inventory.FALLBACK) <= set(counts)


def test_two_secrets_per_advertiser_are_most_of_the_cost():
    measured = {
        "refreshes_per_advertiser_hour": 1.25,
        "aws_calls_per_refresh": {"dynamodb:GetItem": 2, "dynamodb:UpdateItem": 5, "secretsmanager:GetSecretValue": 1,
                                  "secretsmanager:PutSecretValue": 1, "sqs:SendMessageBatch": 0.1},
        "aws_calls_per_idle_dispatch": {"dynamodb:Query": 4},
        "aws_calls_per_callback": {"secretsmanager:CreateSecret": 2},
        "secrets_calls_per_1000_reads": 1, "refresh_schedule_minutes": 1, "records_at_once": 10,
    }
    items = cost.monthly_cost(1000, measured, inventory.FALLBACK)
    assert items["secrets_storage"] == pytest.approx((2 * 1000 + 1) * 0.40)
    assert items["secrets_storage"] > 0.9 * sum(items.values())
    alternatives = cost.alternatives(1000, measured, inventory.FALLBACK)
    assert min(alternatives.values()) < alternatives["two_secrets_per_advertiser (current)"] / 5
