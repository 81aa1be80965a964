"""Figure 3: the refresher under a backlog (figure 2, the steady state of a simulated day of
each token layout, is ``bench.layouts``).

Throughput runs the deployed worker handler (``adsauth.handlers.worker``: Powertools batch
processing, the record handler, the refresher's lease and due checks) and the real LwA adapter
against the emulator with its latency switch. The table and Secrets Manager are the in-memory
stand-ins of ``local.simulation`` behind a fixed per-call latency: moto on the same two cores
would measure moto's CPU, not the refresher's concurrency.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable

from adsauth.adapters.http import HttpClient
from adsauth.adapters.lwa import ClientCredentials, LwaHttpClient
from adsauth.models import TokenSet
from adsauth.refresher import Refresher
from adsauth.regions import endpoints_from_env
from local.emulator import Emulator
from local.gateway import LambdaContext
from local.simulation import (
    MemoryNotifier,
    MemoryStore,
    MemoryVault,
    NoProfiles,
    seed_connected,
    simulation_settings,
)

CLIENT_ID = "amzn1.application-oa2-client.bench000000000000000000000000000"
LWA_LATENCY_MS = 100  # the issue's figure: every LwA refresh call waits this long at the emulator
AWS_CALL_LATENCY_S = 0.005  # each table / Secrets Manager call of the stand-ins (DynamoDB is ~5 ms)
BATCH_SIZE = 10  # the SQS event source's batch size (infra.constants.REFRESH_BATCH_SIZE)


# --- figure 3 ----------------------------------------------------------------------------------
class CountingEmulator(Emulator):
    """The emulator, also counting refresh calls per refresh token (one token per advertiser)."""

    def __init__(self) -> None:
        super().__init__()
        self.refreshes: Counter[str] = Counter()

    def _refresh(self, client, form: dict) -> dict:
        with self._lock:
            self.refreshes[form.get("refresh_token", "")] += 1
        return super()._refresh(client, form)


class Slow:
    """An in-memory adapter whose every call takes ``seconds`` first, as a network call does."""

    def __init__(self, target: Any, seconds: float) -> None:
        self._target, self._seconds = target, seconds

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            time.sleep(self._seconds)
            return attribute(*args, **kwargs)

        return call


@dataclass
class Backlog:
    """``count`` connected advertisers whose access tokens are all due now."""

    ids: list[str]
    tokens: dict[str, str]  # advertiser -> refresh token (private to the bench)
    store: MemoryStore
    vault: MemoryVault


def seed_backlog(emulator: CountingEmulator, count: int, prefix: str) -> Backlog:
    settings = simulation_settings()
    store, vault = MemoryStore(settings.due_schedule), MemoryVault()
    now = time.time()
    ids, tokens = [], {}
    for i in range(count):
        advertiser_id = f"adv-{prefix}{i:05d}"
        refresh_token = emulator.issue_refresh_token(CLIENT_ID)
        # 10 minutes left: due
        seed_connected(store, vault, advertiser_id, TokenSet("Atza|seed", refresh_token, now + 600), now, name=f"Shop {i}")
        ids.append(advertiser_id)
        tokens[advertiser_id] = refresh_token
    return Backlog(ids, tokens, store, vault)


def sqs_event(advertiser_ids: list[str]) -> dict:
    arn = "arn:aws:sqs:us-east-1:123456789012:adsauth-bench-refresh"
    return {"Records": [
        {"messageId": str(uuid.uuid4()), "receiptHandle": uuid.uuid4().hex,
         "body": f'{{"advertiser_id": "{a}"}}',
         "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": arn,
         "awsRegion": "us-east-1"}
        for a in advertiser_ids
    ]}


def drain(handler: Callable[[dict, Any], dict], ids: list[str], *, instances: int, batch_size: int) -> dict:
    """``instances`` workers (threads standing in for Lambda instances) take batches from one queue
    until it is empty; records reported failed go back to the queue, as SQS redelivers them."""
    queue, lock = deque(ids), threading.Lock()
    invocations = redelivered = 0

    def instance() -> None:
        nonlocal invocations, redelivered
        while True:
            with lock:
                batch = [queue.popleft() for _ in range(min(batch_size, len(queue)))]
            if not batch:
                return
            event = sqs_event(batch)
            context = LambdaContext("adsauth-bench-worker", "us-east-1", time.monotonic() + 60)
            response = handler(event, context)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            with lock:
                invocations += 1
                for record in event["Records"]:
                    if record["messageId"] in failed:
                        queue.append(record["body"].split('"')[3])
                        redelivered += 1

    threads = [threading.Thread(target=instance, name=f"worker-{i}") for i in range(instances)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rate_per_second": len(ids) / seconds, "invocations": invocations,
            "redelivered": redelivered}


def check_backlog(emulator: CountingEmulator, backlog: Backlog) -> tuple[int, int]:
    """(lost, duplicated): advertisers refreshed zero times, or more than once."""
    lost = duplicated = 0
    for advertiser_id in backlog.ids:
        calls = emulator.refreshes[backlog.tokens[advertiser_id]]
        token, _ = backlog.vault.access[advertiser_id]
        if calls == 0 or token == "Atza|seed":
            lost += 1
        elif calls > 1:
            duplicated += 1
    return lost, duplicated


def make_refresher(emulator: CountingEmulator, backlog: Backlog, pool_size: int) -> Refresher:
    http = HttpClient(timeout_seconds=5.0, max_attempts=3, backoff_cap_seconds=0.5)
    # one process stands in for every instance: its connection pool holds all of their connections
    import urllib3

    http.pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", retries=False, maxsize=pool_size)
    secret = emulator.bench_secret
    lwa = LwaHttpClient(http=http, endpoints=endpoints_from_env(emulator.endpoints_env()),
                        credentials=lambda: ClientCredentials(CLIENT_ID, secret), clock=time.time)
    return Refresher(settings=simulation_settings(), store=Slow(backlog.store, AWS_CALL_LATENCY_S),
                     vault=Slow(backlog.vault, AWS_CALL_LATENCY_S), lwa=lwa, ads=NoProfiles(),
                     notifier=MemoryNotifier(), clock=time.time)


def throughput(advertisers: int, sample: int, concurrency: int) -> dict:
    import secrets as random_secrets

    from adsauth.handlers import worker

    emulator = CountingEmulator().start()
    emulator.bench_secret = random_secrets.token_hex(16)
    emulator.register_client(CLIENT_ID, emulator.bench_secret, ["https://bench.example/callback"])
    emulator.fault("token", "latency", latency_ms=LWA_LATENCY_MS)
    original = worker.refresher
    try:
        one = seed_backlog(emulator, sample, "one")
        alone = make_refresher(emulator, one, 4)
        worker.refresher = lambda: alone  # noqa: E731
        sequential = drain(worker.handler, one.ids, instances=1, batch_size=1)
        many = seed_backlog(emulator, advertisers, "many")
        shared = make_refresher(emulator, many, concurrency * BATCH_SIZE + 4)
        worker.refresher = lambda: shared  # noqa: E731
        concurrent = drain(worker.handler, many.ids, instances=concurrency, batch_size=BATCH_SIZE)
        lost, duplicated = check_backlog(emulator, many)
        lost_one, duplicated_one = check_backlog(emulator, one)
    finally:
        worker.refresher = original
        emulator.stop()
    return {
        "refresh_throughput_speedup": round(concurrent["rate_per_second"] / sequential["rate_per_second"], 1),
        "refresh_lost": lost + lost_one,
        "refresh_duplicated": duplicated + duplicated_one,
        "details": {
            "one_at_a_time": {**sequential, "advertisers": sample, "instances": 1, "batch_size": 1},
            "configured": {**concurrent, "advertisers": advertisers, "instances": concurrency,
                           "batch_size": BATCH_SIZE, "records_at_once": getattr(worker, "RECORDS_AT_ONCE", 1)},
            "lwa_latency_ms": LWA_LATENCY_MS,
            "aws_call_latency_ms": AWS_CALL_LATENCY_S * 1000,
        },
    }
