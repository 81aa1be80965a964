"""``make demo`` (``python -m local.demo``): it tells a person what happened, in one date format,
never shows a token, and fails loudly when a step does not do what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _demo(code: str = "import sys, local.demo as d; sys.exit(d.main())") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "lambdas")])}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess:
    return _demo()


def test_the_demo_tells_the_story_and_exits_0(demo):
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "FAILED" not in demo.stderr and "Traceback" not in demo.stderr
    out = demo.stdout
    for outcome in (
        "clicked Allow at Amazon; adsauth stored their tokens",
        "The refresher renewed it with 1 call to Login with Amazon",
        "A downstream Lambda got an access token",
        "0 reads failed",
        "The grant now ends",
        "Demo finished in",
    ):
        assert outcome in out, outcome


def test_the_demo_speaks_in_outcomes_with_one_date_format(demo):
    out = demo.stdout
    assert not re.search(r"\b(30[1-8]|200)\s*->", out)  # no status-code chains
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", out)  # no ISO 8601 stamps ...
    dates = re.findall(r"\d{4}-\d{2}-\d{2}[^\n]{0,10}", out)
    assert dates and all(re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", d) for d in dates), dates  # ... only this one


def test_the_demo_never_shows_a_token(demo):
    assert not re.search(r"Atz[ar]\|", demo.stdout + demo.stderr)


def test_a_step_that_does_not_do_what_it_says_fails_the_demo():
    # Ask for a fourth region: the "profiles in every region" check cannot hold.
    failed = _demo("import sys, local.demo as d; d.REGIONS = ('NA', 'EU', 'FE', 'XX'); sys.exit(d.main())")
    assert failed.returncode == 1
    assert "FAILED: profiles were found in NA, EU and FE" in failed.stderr
    assert "demo FAILED (1 check)" in failed.stderr
    assert "Demo finished" not in failed.stdout
