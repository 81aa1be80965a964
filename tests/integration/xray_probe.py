"""Runs every function through a local stack of its own in the environment Lambda gives a
function with active tracing, and writes what the process did about X-Ray to a JSON file:
``python -m tests.integration.xray_probe OUT.json``. ``test_no_secrets_in_traces`` reads it.

The functions carry no X-Ray SDK: Lambda records each invocation's segment itself, from outside
the process, with no request value in it. Only code in the process could add a subsegment, an
annotation or metadata, and that takes the SDK. So the probe records:

- which ``aws_xray_sdk`` modules are loaded once every function has run: the handlers are
  imported afresh in Lambda's environment with tracing on (``LAMBDA_TASK_ROOT``, a trace header
  in ``_X_AMZN_TRACE_ID``, Powertools' tracing not disabled; the local stack turns it off), and
  each route runs (connect, a result page, the callback, POST /token, the dispatcher, the worker),
  so what a handler imports on first use is loaded too;
- what reached the daemon's address (``AWS_XRAY_DAEMON_ADDRESS``, a UDP socket the probe reads);
- then, a canary: what a Powertools ``Tracer`` made in the same environment does. It must load
  the SDK and reach the socket, or finding neither before would prove nothing.

A process of its own: the modules loaded are this run's alone, and the canary's tracer patches
botocore and requests for the whole process.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

MANUAL_REDIRECT = "https://www.amazon.com/"
# what Lambda puts in _X_AMZN_TRACE_ID for a sampled invocation
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
HANDLERS = ("connect", "callback", "dispatcher", "worker")


class Daemon:
    """A UDP socket where Lambda's X-Ray daemon listens; keeps every datagram sent to it."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self._received: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._listen, name="xray-daemon", daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self._socket.getsockname()
        return f"{host}:{port}"

    def _listen(self) -> None:
        while True:
            try:
                data = self._socket.recv(65535)
            except socket.timeout:
                continue
            with self._lock:
                self._received.append(data.decode("utf-8", "replace"))

    def take(self, settle_seconds: float = 0.3) -> list[str]:
        """What arrived so far (after a moment for datagrams in flight), and forget it."""
        time.sleep(settle_seconds)
        with self._lock:
            taken, self._received = self._received, []
        return taken


def xray_modules() -> list[str]:
    return sorted(m for m in sys.modules if m == "aws_xray_sdk" or m.startswith("aws_xray_sdk."))


def _lambda_tracing_on(daemon: Daemon) -> None:
    """Lambda's environment for a traced function, in which Powertools' ``Tracer`` would trace
    (the local stack turns it off); the handlers are imported again, in it."""
    os.environ.update({
        "LAMBDA_TASK_ROOT": "/var/task",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "_X_AMZN_TRACE_ID": TRACE_HEADER,
        "AWS_XRAY_DAEMON_ADDRESS": daemon.address,
    })
    for name in [m for m in sys.modules if m.startswith("adsauth.handlers.")]:
        del sys.modules[name]


def _canary(daemon: Daemon) -> dict:
    """What a Powertools ``Tracer`` does in this environment: one subsegment, sent to the daemon."""
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service="xray-probe")
    with tracer.provider.in_subsegment("## canary"):
        pass
    return {"disabled": bool(tracer.disabled), "sdk_loaded": "aws_xray_sdk.core" in sys.modules,
            "received": daemon.take()}


def main(out_path: str) -> None:
    daemon = Daemon()
    import boto3

    from adsauth import schema, wiring
    from local.browser import Browser
    from local.gateway import sign_request
    from local.stack import CLIENT_ID, OPERATOR_KEYS, LocalStack

    class ShiftClock:  # real time plus an offset (the app's and the emulator's clock)
        offset = 0.0

        def __call__(self) -> float:
            return time.time() + self.offset

    clock = ShiftClock()
    ran: list[str] = []
    with LocalStack(clock=clock) as stack:
        _lambda_tracing_on(daemon)
        stack.gateway._handlers.clear()  # the gateway imports the handlers again, in that environment

        # connect + callback (GET): an advertiser's consent, and the page it ends on
        browser = Browser()
        advertiser_id, link = stack.invite()
        connect = browser.get(link)
        assert connect.status_code == 302, connect.status_code
        page = browser.get(connect.headers["Location"])
        answer = browser.click(page, "allow")
        result = browser.get(answer.headers["Location"])
        assert result.status_code == 303, result.status_code
        ran += ["connect", "callback"]
        landing = browser.get(result.headers["Location"])
        assert landing.status_code == 200, landing.status_code
        ran.append("result")

        # POST /token: the manual flow, a code pasted from the browser bar
        stack.emulator.register_client(CLIENT_ID, stack.client_secret, [stack.callback_url, MANUAL_REDIRECT])
        query = urlencode({"client_id": CLIENT_ID, "scope": "advertising::campaign_management",
                           "response_type": "code", "redirect_uri": MANUAL_REDIRECT, "state": "probe-state-0123456789"})
        manual = Browser()
        answer = manual.click(manual.get(f"{stack.emulator.base_url}/na/ap/oa?{query}"), "allow")
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        manual_id, _manual_link = stack.invite(name="Manual Shop")
        body = json.dumps({"code": code, "redirect_uri": MANUAL_REDIRECT, "region": "NA", "advertiser": manual_id})
        url = f"{stack.base_url}/token"
        headers = sign_request("POST", url, body, {"Content-Type": "application/json"}, credentials=OPERATOR_KEYS)
        import requests

        posted = requests.post(url, data=body, headers=headers, timeout=30)
        assert posted.status_code == 200, posted.status_code
        ran.append("token")

        # dispatcher + worker: both advertisers' tokens are due an hour later
        table = boto3.resource("dynamodb").Table("adsauth-local")

        def expiries() -> list[float]:
            items = [table.get_item(Key=schema.advertiser_key(a))["Item"] for a in (advertiser_id, manual_id)]
            assert [item["status"] for item in items] == ["connected", "connected"], items
            return [float(item["token_expires_at"]) for item in items]

        issued = expiries()
        wiring.clock = clock
        wiring.refresher.cache_clear()
        clock.offset += 3300
        scheduler = stack.scheduler()
        dispatched = scheduler.dispatch()
        assert dispatched == 2, dispatched
        ran.append("dispatcher")
        report = scheduler.drain()  # every job queued, however many messages carry them
        assert report.processed >= 1 and report.failed == 0 and scheduler.depth() == 0, report
        refreshed = expiries()
        assert all(new > old for new, old in zip(refreshed, issued)), (issued, refreshed)  # both tokens refreshed
        ran.append("worker")

        found = {
            "ran": ran,
            "handlers_loaded": [h for h in HANDLERS if f"adsauth.handlers.{h}" in sys.modules],  # since the purge
            "xray_modules": xray_modules(),
            "daemon_received": daemon.take(),
        }
        found["canary"] = _canary(daemon)
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump(found, out)


if __name__ == "__main__":
    main(sys.argv[1])
