"""What the stack creates that is billed whether or not anyone connects: counted in the template.

    python -m bench.inventory        # prints the counts as JSON (synthesizes the stack, ~30 s)

The stack is synthesized with the configuration in cdk.json and bundling skipped (the asset's
content does not change what is created). ``count_resources`` reads any synthesized template, so
the test can feed it a small one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# resource types that cost money by their mere existence, or that carry the per-call prices
BILLED_TYPES = {
    "AWS::Lambda::Function": "functions",
    "AWS::SQS::Queue": "queues",
    "AWS::KMS::Key": "kms_keys",
    "AWS::SecretsManager::Secret": "secrets",
    "AWS::CloudWatch::Alarm": "alarms",
    "AWS::CloudWatch::Dashboard": "dashboards",
    "AWS::Logs::LogGroup": "log_groups",
    "AWS::DynamoDB::Table": "tables",
    "AWS::DynamoDB::GlobalTable": "tables",
    "AWS::ApiGateway::RestApi": "rest_apis",
    "AWS::WAFv2::WebACL": "web_acls",
    "AWS::SNS::Topic": "topics",
    "AWS::Events::Rule": "schedules",
}

# Used when the template cannot be synthesized (e.g. the CDK app is broken mid-edit): the counts
# of the default configuration as last read from the template, so the cost model still runs.
FALLBACK = {
    "functions": 4, "queues": 3, "kms_keys": 1, "secrets": 1, "alarms": 7, "dashboards": 1,
    "log_groups": 5, "tables": 1, "rest_apis": 1, "web_acls": 0, "topics": 1, "schedules": 1,
    "table_indexes": 3, "worker_memory_mb": 512, "dispatcher_memory_mb": 512, "xray_tracing": True,
}


def count_resources(template: dict) -> dict:
    counts = {name: 0 for name in set(BILLED_TYPES.values())}
    indexes, memory, tracing = 0, {}, False
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type", "")
        if kind in BILLED_TYPES:
            counts[BILLED_TYPES[kind]] += 1
        properties = resource.get("Properties", {})
        if kind.startswith("AWS::DynamoDB::"):
            indexes += len(properties.get("GlobalSecondaryIndexes", []))
        if kind == "AWS::Lambda::Function":
            handler = str(properties.get("Handler", ""))
            for role in ("worker", "dispatcher"):
                if f"handlers.{role}." in handler:
                    memory[f"{role}_memory_mb"] = int(properties.get("MemorySize", 128))
            tracing = tracing or properties.get("TracingConfig", {}).get("Mode") == "Active"
    return {**counts, "table_indexes": indexes, "worker_memory_mb": memory.get("worker_memory_mb", 128),
            "dispatcher_memory_mb": memory.get("dispatcher_memory_mb", 128), "xray_tracing": tracing}


def synthesized_template() -> dict:
    import shutil
    import tempfile

    import aws_cdk as cdk

    from infra.config import load_config
    from infra.stack import AdsAuthStack

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    # cdk.json ships a placeholder operator_name that synth refuses; the bench names one, as ops do
    context = {**context, "adsauth": {**context["adsauth"], "operator_name": "Bench Agency"}}
    outdir = tempfile.mkdtemp(prefix="adsauth-bench-synth-")
    try:
        app = cdk.App(outdir=outdir, context={**context, "aws:cdk:bundling-stacks": []})
        stack = AdsAuthStack(app, "AdsAuth", config=load_config(context["adsauth"]))
        return app.synth().get_stack_by_name(stack.stack_name).template
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


def inventory(*, synthesize: bool = True, timeout: float = 240) -> dict:
    """The counts, and where they came from (``template`` or ``fallback`` with the reason)."""
    if not synthesize:
        return {**FALLBACK, "source": "fallback (synthesis skipped)"}
    try:
        done = subprocess.run([sys.executable, "-m", "bench.inventory"], cwd=REPO, capture_output=True,
                              text=True, timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        return {**FALLBACK, "source": "fallback (synthesis timed out)"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {**FALLBACK, "source": f"fallback (synthesis failed: {last})"}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "source": "template"}


def _env() -> dict:
    import os

    path = os.pathsep.join([str(REPO), str(REPO / "lambdas")])
    return {**os.environ, "PYTHONPATH": path, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}


if __name__ == "__main__":
    print(json.dumps(count_resources(synthesized_template())))
