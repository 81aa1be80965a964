"""No invitation token, state, code, PKCE verifier cookie, access or refresh token or client secret
in anything the functions' own X-Ray tracing records (issue 10, finding 7, the function side; the
API stage's tracing is the infrastructure's test). ``tests/integration/xray_probe.py`` runs
connect, the callback (GET and POST /token), the dispatcher and the worker with tracing on, in a
process of its own; this reads every segment and subsegment it recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _walk(entity: dict):
    yield entity
    for sub in entity.get("subsegments", []):
        yield from _walk(sub)


@pytest.fixture(scope="module")
def traced(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("xray") / "traces.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LWA_", "POWERTOOLS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lambdas"), env.get("PYTHONPATH", "")])
    probe = subprocess.run([sys.executable, "-m", "tests.integration.xray_probe", str(out)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    data = json.loads(out.read_text())
    data["parsed"] = [e for raw in data["entities"] for e in _walk(json.loads(raw))]
    return data


def test_every_function_was_traced(traced):
    """The scan below means something: each function ran and its calls were recorded."""
    assert traced["ran"] == ["connect", "callback", "token", "dispatcher", "worker"]
    segments = {e["name"] for e in traced["parsed"] if e.get("type") != "subsegment" and "trace_id" in e}
    assert {"lambda:connect", "lambda:callback", "lambda:adsauth-local-dispatcher",
            "lambda:adsauth-local-worker"} <= segments
    names = [e["name"] for e in traced["parsed"]]
    assert names.count("## handler") >= 5  # Powertools' subsegment, once per invocation
    assert {"dynamodb", "secretsmanager", "sqs", "events"} <= set(names)
    assert len(traced["sensitive"]) >= 8  # tokens, codes, states, the verifier cookie, the client secret


def test_no_secret_value_is_in_any_segment(traced):
    text = "\n".join(traced["entities"])
    found = [v[:6] + "…" for v in traced["sensitive"] if v in text or quote(v, safe="") in text]
    assert found == []


def test_no_recorded_url_has_a_query_and_no_handler_captured_a_response_or_an_error(traced):
    urls = [e["http"]["request"]["url"] for e in traced["parsed"] if e.get("http", {}).get("request", {}).get("url")]
    assert [u for u in urls if "?" in u] == []
    handlers = [e for e in traced["parsed"] if e["name"] == "## handler"]
    assert all(not e.get("metadata") and "cause" not in e for e in handlers)
    assert all(set(e.get("annotations", {})) <= {"ColdStart", "Service"} for e in traced["parsed"])
