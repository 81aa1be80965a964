"""The refresh worker handler: a batch's records are refreshed at once, and each keeps its own
outcome (partial batch failures) and its own metric."""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
import uuid

import pytest

import adsauth.handlers
from adsauth.errors import AdvertiserUnknown, LwaUnavailable
from adsauth.models import RefreshResult
from local.gateway import LambdaContext


def sqs_event(bodies: list[str]) -> dict:
    return {"Records": [
        {"messageId": str(uuid.uuid4()), "receiptHandle": uuid.uuid4().hex, "body": body,
         "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
         "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:refresh",
         "awsRegion": "us-east-1"}
        for body in bodies
    ]}


def job(advertiser_id: str) -> str:
    return json.dumps({"advertiser_id": advertiser_id})


class StubRefresher:
    """Refreshes after ``before`` returns; ids starting with ``fail`` or ``gone`` fail as LwA
    unavailable or unknown advertiser."""

    def __init__(self, before=lambda: None) -> None:
        self.before = before
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.running = self.most_running = 0

    def refresh(self, advertiser_id: str) -> RefreshResult:
        with self.lock:
            self.seen.append(advertiser_id)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.before()
            if advertiser_id.startswith("fail"):
                raise LwaUnavailable()
            if advertiser_id.startswith("gone"):
                raise AdvertiserUnknown()
            return RefreshResult(advertiser_id, "refreshed", token_expires_at=time.time() + 3600)
        finally:
            with self.lock:
                self.running -= 1


WORKER = "adsauth.handlers.worker"


@pytest.fixture
def worker(monkeypatch):
    """The worker module, imported afresh with a metrics namespace and forgotten afterwards: a
    handler module keeps the namespace of the environment it was first imported in, and the
    integration tests import it under the local stack's."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "adsauth-test")
    monkeypatch.delitem(sys.modules, WORKER, raising=False)
    monkeypatch.delattr(adsauth.handlers, "worker", raising=False)
    module = importlib.import_module(WORKER)
    yield module
    sys.modules.pop(WORKER, None)  # monkeypatch then puts back whatever was there before
    if getattr(adsauth.handlers, "worker", None) is module:
        delattr(adsauth.handlers, "worker")


@pytest.fixture
def metric_values(worker, capsys):
    """Runs the handler and returns (response, {metric name: number of values emitted})."""

    def run(event: dict) -> tuple[dict, dict[str, int]]:
        capsys.readouterr()
        response = worker.handler(event, LambdaContext("adsauth-test-worker", "us-east-1", time.monotonic() + 60))
        counts: dict[str, int] = {}
        for line in capsys.readouterr().out.splitlines():
            try:
                blob = json.loads(line)
            except ValueError:
                continue
            for spec in blob.get("_aws", {}).get("CloudWatchMetrics", []):
                for metric in spec["Metrics"]:
                    values = blob[metric["Name"]]
                    counts[metric["Name"]] = counts.get(metric["Name"], 0) + (len(values) if isinstance(values, list) else 1)
        return response, counts

    return run


def test_the_records_of_a_batch_are_refreshed_at_once(monkeypatch, worker, metric_values):
    # every refresh waits until all ten run: one by one, the first would wait in vain
    barrier = threading.Barrier(10, timeout=10)
    stub = StubRefresher(before=barrier.wait)
    monkeypatch.setattr(worker, "refresher", lambda: stub)
    response, counts = metric_values(sqs_event([job(f"adv-{i}") for i in range(10)]))
    assert response == {"batchItemFailures": []}
    assert sorted(stub.seen) == sorted(f"adv-{i}" for i in range(10))
    assert stub.most_running == 10
    assert counts == {"RefreshOk": 10}


def test_each_record_keeps_its_own_outcome_and_metric(monkeypatch, worker, metric_values):
    stub = StubRefresher(before=lambda: time.sleep(0.01))
    monkeypatch.setattr(worker, "refresher", lambda: stub)
    bodies = [job("adv-1"), job("fail-1"), "not json", job("gone-1"), job("adv-2"), job("fail-2"), job("adv-3")]
    event = sqs_event(bodies)
    response, counts = metric_values(event)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {r["messageId"] for r in event["Records"] if r["body"] in (job("fail-1"), job("fail-2"))}
    assert sorted(stub.seen) == ["adv-1", "adv-2", "adv-3", "fail-1", "fail-2", "gone-1"]
    assert counts == {"RefreshOk": 3, "RefreshFailed": 2}


def test_a_single_record_is_handled_as_before(monkeypatch, worker, metric_values):
    stub = StubRefresher()
    monkeypatch.setattr(worker, "refresher", lambda: stub)
    response, counts = metric_values(sqs_event([job("fail-1")]))
    assert len(response["batchItemFailures"]) == 1 and stub.seen == ["fail-1"]
    assert counts == {"RefreshFailed": 1}


def test_metrics_of_concurrent_records_are_all_counted(monkeypatch, worker, metric_values):
    # ten threads adding the first values of a metric at once: every value is emitted
    for _ in range(5):
        barrier = threading.Barrier(10, timeout=10)
        stub = StubRefresher(before=barrier.wait)
        monkeypatch.setattr(worker, "refresher", lambda: stub)
        _response, counts = metric_values(sqs_event([job(f"adv-{i}") for i in range(10)]))
        assert counts == {"RefreshOk": 10}
