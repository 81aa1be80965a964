"""Runs every function through a local stack of its own with X-Ray tracing ON, the X-Ray SDK
recording into memory, and writes what it recorded (and every secret the run handled) to a JSON
file: ``python -m tests.integration.xray_probe OUT.json``. ``test_no_secrets_in_traces`` reads it.

A process of its own because tracing, once on, patches botocore, requests and http.client for
the whole process (Powertools' ``Tracer`` auto-patches), which the rest of the suite must not see.

Lambda gives each invocation a trace segment (and each thread its own); here every thread the
functions run on (the local gateway's ``lambda:*`` threads, the dispatcher's and the worker's,
and the pools the handler code starts) gets a segment when it first needs one. Everything the
test harness does itself (the browser, provisioning, reading results) runs on untraced threads.

What the functions' own tracing can record: Powertools' handler subsegment (``ColdStart`` and
``Service`` annotations; responses and errors are not captured, ``capture_response=False,
capture_error=False`` on every handler) and botocore subsegments (operation, table, queue URL,
status; the SDK's whitelist of parameters, never a key or a value). The LwA and Ads API calls
go through urllib3 2, whose requests no X-Ray patch sees (Powertools patches botocore and
requests; the SDK's http.client patch hooks ``_send_request``, which urllib3 2 never calls), so
no outbound URL is recorded at all; the test would see one if that changed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

TRACED_THREADS = ("lambda:", "profiles", "listing", "refresh", "ThreadPoolExecutor")
MANUAL_REDIRECT = "https://www.amazon.com/"


def _recorder():
    os.environ.pop("LAMBDA_TASK_ROOT", None)  # an ordinary recorder, whose context we choose
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.context import Context
    from aws_xray_sdk.core.models.segment import Segment

    entities: list[str] = []
    made: list[Segment] = []
    lock = threading.Lock()

    class MemoryEmitter:
        def send_entity(self, entity) -> None:
            with lock:
                entities.append(entity.serialize())

        def set_daemon_address(self, address) -> None:
            pass

    class FunctionThreads(Context):
        def get_trace_entity(self):
            if not getattr(self._local, "entities", None) and threading.current_thread().name.startswith(TRACED_THREADS):
                segment = Segment(name=threading.current_thread().name.split("_")[0])
                self.put_segment(segment)
                with lock:
                    made.append(segment)
            return super().get_trace_entity()

    xray_recorder.configure(sampling=False, context=FunctionThreads(), emitter=MemoryEmitter(),
                            context_missing="IGNORE_ERROR", plugins=(), service="adsauth")

    def recorded() -> list[str]:
        with lock:
            return list(entities) + [segment.serialize() for segment in made]

    return recorded


def _trace_functions() -> None:
    """Import the handlers as Lambda does: tracing on (the local stack turns it off)."""
    import aws_xray_sdk
    from aws_lambda_powertools import Tracer

    for name in [m for m in sys.modules if m.startswith("adsauth.handlers.") and m != "adsauth.handlers.common"]:
        del sys.modules[name]
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "false"
    os.environ["LAMBDA_TASK_ROOT"] = "/var/task"  # Powertools traces only inside Lambda
    Tracer._reset_config()
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(True)
    import adsauth.handlers.callback  # noqa: F401
    import adsauth.handlers.connect  # noqa: F401
    import adsauth.handlers.dispatcher  # noqa: F401
    import adsauth.handlers.worker  # noqa: F401

    os.environ.pop("LAMBDA_TASK_ROOT")
    assert not adsauth.handlers.connect.tracer.disabled


def _in_lambda_thread(name: str, work):
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=run, name=f"lambda:{name}")
    thread.start()
    thread.join(120)
    if "error" in outcome:
        raise RuntimeError(f"{name}: {outcome['error']}")
    return outcome.get("result")


def main(out_path: str) -> None:
    recorded = _recorder()
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
    sensitive: set[str] = set()
    ran: list[str] = []
    with LocalStack(clock=clock) as stack:
        _trace_functions()
        stack.gateway._handlers.clear()  # the gateway loads the traced handlers
        sensitive.add(stack.client_secret)

        # connect + callback (GET): an advertiser's consent
        browser = Browser()
        advertiser_id, link = stack.invite()
        sensitive.add(link.rsplit("/", 1)[-1])
        connect = browser.get(link)
        assert connect.status_code == 302, connect.status_code
        authorize = connect.headers["Location"]
        sensitive.update(parse_qs(urlsplit(authorize).query)["state"])
        sensitive.update(cookie.value for cookie in browser.session.cookies)  # the PKCE verifier's binding
        page = browser.get(authorize)
        answer = browser.click(page, "allow")
        callback_url = answer.headers["Location"]
        sensitive.update(parse_qs(urlsplit(callback_url).query).get("code", []))
        result = browser.get(callback_url)
        assert result.status_code == 303, result.status_code
        ran += ["connect", "callback"]

        # POST /token: the manual flow, a code pasted from the browser bar
        stack.emulator.register_client(CLIENT_ID, stack.client_secret, [stack.callback_url, MANUAL_REDIRECT])
        query = urlencode({"client_id": CLIENT_ID, "scope": "advertising::campaign_management",
                           "response_type": "code", "redirect_uri": MANUAL_REDIRECT, "state": "probe-state-0123456789"})
        manual = Browser()
        answer = manual.click(manual.get(f"{stack.emulator.base_url}/na/ap/oa?{query}"), "allow")
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        sensitive.add(code)
        manual_id, manual_link = stack.invite(name="Manual Shop")
        sensitive.add(manual_link.rsplit("/", 1)[-1])
        body = json.dumps({"code": code, "redirect_uri": MANUAL_REDIRECT, "region": "NA", "advertiser": manual_id})
        url = f"{stack.base_url}/token"
        headers = sign_request("POST", url, body, {"Content-Type": "application/json"}, credentials=OPERATOR_KEYS)
        import requests

        posted = requests.post(url, data=body, headers=headers, timeout=30)
        assert posted.status_code == 200, posted.status_code
        ran.append("token")

        # dispatcher + worker: both advertisers' tokens are due an hour later
        wiring.clock = clock
        wiring.refresher.cache_clear()
        clock.offset += 3300
        scheduler = stack.scheduler()
        dispatched = _in_lambda_thread("adsauth-local-dispatcher", scheduler.dispatch)
        assert dispatched == 2, dispatched
        ran.append("dispatcher")
        messages = scheduler.receive()
        report = _in_lambda_thread("adsauth-local-worker", lambda: scheduler.drain_messages(messages))
        assert report.processed == 2, report
        ran.append("worker")

        for cookie in [*browser.session.cookies, *manual.session.cookies]:
            sensitive.add(cookie.value)
        em = stack.emulator
        with em._lock:
            sensitive.update(em._codes.keys())
            sensitive.update(em._refresh_tokens.keys())
            sensitive.update(em._access_tokens.keys())
            for issued in em._codes.values():
                sensitive.add(getattr(issued.request, "state", None) or "")
        table = boto3.resource("dynamodb").Table("adsauth-local")
        assert table.get_item(Key=schema.advertiser_key(advertiser_id))["Item"]["status"] == "connected"
        time.sleep(0.2)  # the last subsegments close
        entities = recorded()
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump({"entities": entities, "sensitive": sorted(v for v in sensitive if v and len(v) >= 8),
                   "ran": ran}, out)


if __name__ == "__main__":
    main(sys.argv[1])
