"""What ``make local`` prints for another shell: an ``export`` block that, sourced in an empty
environment, gives the ``adsauth`` command everything the local stack gave its functions, the
emulator's LwA and Ads API endpoints included (so a refresh from that shell never goes to
api.amazon.com)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

from adsauth.regions import Region
from adsauth.settings import settings_from_env
from local import run
from tests.stack_fixtures import remembered_tokens

REPO = Path(__file__).resolve().parents[2]
ADSAUTH = Path(sys.executable).parent / "adsauth"  # the console script `make venv` installs
# what the command reads, named here rather than taken from the stack: the settings it requires,
# the AWS endpoint, dummy credentials and region, the layout, queue, topic and bus it writes to,
# and each region's three endpoints
NEEDED = {
    "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION",
    "TABLE_NAME", "PUBLIC_BASE_URL", "LWA_CLIENT_ID", "LWA_CLIENT_SECRET_NAME", "SECRET_PREFIX", "TOKEN_LAYOUT",
    "REFRESH_QUEUE_URL", "ALERT_TOPIC_ARN", "EVENT_BUS_NAME",
    *(f"{kind}_{r.value}" for r in Region for kind in ("LWA_AUTHORIZE_URL", "LWA_TOKEN_URL", "ADS_API_URL")),
}
SHELL_OWN = {"PWD", "SHLVL", "_"}  # what bash itself puts in an environment


def sourced(block: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a new bash, started with nothing (env -i), after sourcing ``block``."""
    script = tmp_path / "adsauth-local.env"
    script.write_text(block + "\n")
    out = subprocess.run(["env", "-i", "/bin/bash", "-c", 'source "$1" && env -0', "_", str(script)],
                         capture_output=True, check=True, timeout=30).stdout.decode()
    env = dict(entry.split("=", 1) for entry in out.split("\0") if entry)
    return {k: v for k, v in env.items() if k not in SHELL_OWN}


def in_that_shell(block: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """A command run from a new shell that has only the pasted block (and a PATH)."""
    script = tmp_path / "adsauth-local.env"
    script.write_text(block + "\nexport PATH=/usr/bin:/bin\n")
    return subprocess.run(["env", "-i", "/bin/bash", "-c", 'source "$1" && shift && exec "$@"', "_", str(script), *argv],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_the_block_is_the_stacks_environment_and_points_at_the_emulator(stack, tmp_path):
    env = sourced(run.environment_block(stack), tmp_path)
    assert env == {name: os.environ[name] for name in stack._saved_env}  # all the stack set, as it set it
    assert NEEDED <= set(env)
    settings = settings_from_env(env)  # everything the settings require is there
    assert settings.public_base_url == stack.base_url
    for region, endpoints in settings.endpoints.items():
        for url in (endpoints.authorize_url, endpoints.token_url, endpoints.ads_api_url):
            assert url.startswith(f"{stack.emulator.base_url}/{region.value.lower()}"), (region, url)
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert stack.client_secret not in run.environment_block(stack)


def test_from_that_shell_a_refresh_goes_to_the_emulator(stack, flow, tmp_path):
    f = flow()
    f.consent("allow")
    assert f.callback().status_code == 303
    before = remembered_tokens(f.advertiser_id)
    refreshed = in_that_shell(run.environment_block(stack), tmp_path, str(ADSAUTH), "refresh", f.advertiser_id)
    assert refreshed.returncode == 0, refreshed.stderr
    after = remembered_tokens(f.advertiser_id)
    # a new access token: issued by the emulator, the only LwA that knows this refresh token
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] not in refreshed.stdout + refreshed.stderr


def test_values_are_shell_quoted(monkeypatch, tmp_path):
    hostile = "it's \"$HOME\" `true` & $(false); x"
    monkeypatch.setenv("ADSAUTH_TEST_VALUE", hostile)
    block = run.environment_block(SimpleNamespace(_saved_env={"ADSAUTH_TEST_VALUE": None}))
    assert block.startswith("export ADSAUTH_TEST_VALUE=") and "\n" not in block
    assert sourced(block, tmp_path) == {"ADSAUTH_TEST_VALUE": hostile}


def test_make_local_prints_a_block_that_works_from_another_shell(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.run"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"})
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    printed: list[str] = []
    try:
        while (line := lines.get(timeout=90)) is not None:
            printed.append(line)
            if line == "Ctrl-C stops everything.":
                break
        text = "\n".join(printed)
        assert printed[-1] == "Ctrl-C stops everything.", text
        emulator = re.search(r"LwA emulator (http://127\.0\.0\.1:\d+)", text).group(1)
        advertiser_id = re.search(r"Invitation for advertiser (adv-[0-9a-f]+)", text).group(1)
        block = "\n".join(line for line in printed if line.startswith("export "))
        env = sourced(block, tmp_path)
        assert NEEDED <= set(env)
        assert {name: value for name, value in env.items() if name.startswith(("LWA_", "ADS_API_URL_"))
                and name != "LWA_CLIENT_ID" and name != "LWA_CLIENT_SECRET_NAME"} == {
            f"{kind}_{r.value}": f"{emulator}/{r.value.lower()}{path}" for r in Region
            for kind, path in (("LWA_AUTHORIZE_URL", "/ap/oa"), ("LWA_TOKEN_URL", "/auth/o2/token"), ("ADS_API_URL", ""))}
        assert "    .venv/bin/adsauth list" in printed
        listed = in_that_shell(block, tmp_path, str(ADSAUTH), "list")
        assert listed.returncode == 0, listed.stderr
        assert advertiser_id in listed.stdout
    finally:
        proc.send_signal(signal.SIGTERM)  # what the stack waits for (Ctrl-C works too)
        code = proc.wait(timeout=30)
    assert code == 0
