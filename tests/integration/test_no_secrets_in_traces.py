"""No invitation token, state, code, PKCE verifier cookie, access or refresh token or client secret
in anything the functions' own code adds to X-Ray (issue 10, finding 7, the function side),
because the functions add nothing: they carry no X-Ray SDK. Lambda's active tracing stays on for
every function and the API stage is not traced (``tests/infra/test_deploy_safety.py``), so each
invocation is traced by Lambda itself, from outside the process, without a request value.

``tests/integration/xray_probe.py`` runs connect, a result page, the callback (GET and POST
/token), the dispatcher and the worker in Lambda's environment with tracing on, in a process of
its own, and reports which X-Ray SDK modules got loaded and what reached the daemon's address;
a Powertools ``Tracer`` made at the end shows that both checks see a tracer when there is one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def traced(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("xray") / "probe.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LWA_", "POWERTOOLS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lambdas"), env.get("PYTHONPATH", "")])
    probe = subprocess.run([sys.executable, "-m", "tests.integration.xray_probe", str(out)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(out.read_text())


def test_every_function_ran_where_a_tracer_would_trace(traced):
    """The checks below mean something: every route ran, its handler imported afresh in Lambda's
    traced environment, and in that environment a Tracer loads the SDK and reaches the daemon."""
    assert traced["ran"] == ["connect", "callback", "result", "token", "dispatcher", "worker"]
    assert traced["handlers_loaded"] == ["connect", "callback", "dispatcher", "worker"]
    canary = traced["canary"]
    assert canary["disabled"] is False and canary["sdk_loaded"] is True
    assert any('"## canary"' in datagram for datagram in canary["received"])


def test_no_function_loads_the_xray_sdk(traced):
    assert traced["xray_modules"] == []


def test_nothing_the_functions_do_reaches_the_xray_daemon(traced):
    assert traced["daemon_received"] == []
