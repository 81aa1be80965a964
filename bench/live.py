"""Figures measured on the local stack (moto server as AWS, the LwA/Ads emulator, the local
gateway in front of the deployed handlers): onboarding latency (figure 1), downstream reads
(figure 4), and the AWS calls one onboarding, one refresh and one idle dispatcher run make (the
cost model's inputs, figure 6)."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

ONBOARDING_LATENCY_MS = 200  # the figure: on every LwA token and Ads API call


class ShiftClock:
    """Real time plus an offset the bench moves forward (shared by the app and the emulator)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class AwsCalls:
    """Counts every AWS API call any botocore client in this process makes, by service and
    operation (the local stack's own inspection is not counted: see ``paused``)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.active = False

    @contextmanager
    def installed(self):
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        calls = self

        def counting(client, operation_name, api_params):
            if calls.active:
                with calls.lock:
                    calls.counts[f"{client.meta.service_model.service_name}:{operation_name}"] += 1
            return original(client, operation_name, api_params)

        BaseClient._make_api_call = counting
        try:
            yield self
        finally:
            BaseClient._make_api_call = original

    @contextmanager
    def counting(self):
        """Counts the calls made inside the block; yields the Counter filled when it ends."""
        result: Counter[str] = Counter()
        with self.lock:
            before = Counter(self.counts)
        self.active = True
        try:
            yield result
        finally:
            self.active = False
            with self.lock:
                result.update(self.counts - before)


def _authorize(stack, browser_cls):
    """Invite, open the link, Allow: return (advertiser id, callback URL, browser, verifier)."""
    advertiser_id, link = stack.invite(region="NA")
    browser = browser_cls()
    connect = browser.get(link)
    page = browser.get(connect.headers["Location"])
    answer = browser.click(page, "allow")
    callback_url = answer.headers["Location"]
    verifier = next(c.value for c in browser.session.cookies if c.name.startswith("__Host-"))
    return advertiser_id, callback_url, browser, verifier


def sequential_connect(advertiser_id: str, code: str, verifier: str) -> None:
    """The callback's steps after the state checks, one after another, with the same adapters:
    token, secrets, then NA, EU and FE profiles, then the table."""
    from adsauth import wiring
    from adsauth.errors import AdsApiError
    from adsauth.regions import Region

    s = wiring.get_settings()
    tokens = wiring.lwa_client().exchange_code(Region.NA, code, s.callback_url, verifier)
    vault, ads, now = wiring.vault(), wiring.ads_client(), wiring.now()
    vault.put_grant(advertiser_id, tokens, now)
    profiles, pending = {}, []
    for region in s.allowed_regions:
        try:
            profiles[region] = ads.list_profiles(region, tokens.access_token)
        except AdsApiError:
            pending.append(region)
    from adsauth.lifecycle import grant_for

    store = wiring.store()
    store.complete_connection(advertiser_id=advertiser_id, generation=1, invitation_hash=None, state_hash=None,
                              grant=grant_for(s, now, tokens, now=now), token_expires_at=tokens.expires_at,
                              pending_regions=pending, now=now, events=())
    store.merge_profiles(advertiser_id, profiles, now)
    wiring.store().add_event(advertiser_id, "connected", "manual_exchange", now)


def onboarding(stack, calls: AwsCalls, runs: int) -> tuple[dict, dict]:
    """Callback wall time over the same steps done one after another, both with
    ``ONBOARDING_LATENCY_MS`` on every LwA token and Ads API call; medians of ``runs`` pairs."""
    from local.browser import Browser

    # one unmeasured flow: the process is warm (handlers imported, client secret cached), as a
    # Lambda instance is after its first request
    _, url, browser, _ = _authorize(stack, Browser)
    assert browser.get(url).status_code == 303
    stack.emulator.fault("token", "latency", latency_ms=ONBOARDING_LATENCY_MS)
    stack.emulator.fault("profiles", "latency", latency_ms=ONBOARDING_LATENCY_MS)
    callback_ms, sequential_ms, per_callback = [], [], []
    try:
        for _ in range(runs):
            _, url, browser, _ = _authorize(stack, Browser)
            with calls.counting() as made:
                started = time.perf_counter()
                answer = browser.get(url)
                callback_ms.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 303 or not answer.headers["Location"].endswith("/result/connected"):
                raise RuntimeError(f"the callback did not connect the advertiser ({answer.status_code})")
            per_callback.append(made)
            advertiser_id, url, _, verifier = _authorize(stack, Browser)
            code = parse_qs(urlsplit(url).query)["code"][0]
            started = time.perf_counter()
            sequential_connect(advertiser_id, code, verifier)
            sequential_ms.append((time.perf_counter() - started) * 1000)
    finally:
        stack.emulator.clear_faults()
    callback, sequential = statistics.median(callback_ms), statistics.median(sequential_ms)
    figures = {
        "onboarding_vs_sequential_ratio": round(callback / sequential, 3),
        "details": {
            "callback_ms_median": round(callback, 1), "sequential_ms_median": round(sequential, 1),
            "runs": runs, "latency_ms": ONBOARDING_LATENCY_MS,
            # what each spends beyond the injected latency on its critical path (token, then the
            # regions at once / one after another): state checks, idempotency, secrets, table
            "callback_overhead_ms": round(callback - 2 * ONBOARDING_LATENCY_MS, 1),
            "sequential_overhead_ms": round(sequential - 4 * ONBOARDING_LATENCY_MS, 1),
        },
    }
    return figures, _median_counts(per_callback)


def _median_counts(samples: list[Counter]) -> dict[str, float]:
    keys = sorted(set().union(*samples)) if samples else []
    return {k: statistics.median(s.get(k, 0) for s in samples) for k in keys}


def downstream_reads(reads: int) -> dict:
    """``reads`` calls of ``get_access_token`` for one advertiser in one warm process."""
    from adsauth import client

    advertiser_id = _any_connected_advertiser()
    client.clear_cache()
    secrets_calls = Counter()

    def count(**_kwargs) -> None:
        secrets_calls["GetSecretValue"] += 1

    client._secrets().meta.events.register("before-call.secrets-manager.GetSecretValue", count)
    timings = []
    for _ in range(reads):
        started = time.perf_counter_ns()
        client.get_access_token(advertiser_id=advertiser_id)
        timings.append((time.perf_counter_ns() - started) / 1000)
    percentiles = statistics.quantiles(timings, n=100, method="inclusive")
    client.clear_cache()
    return {
        "secrets_calls_per_1000_reads": round(secrets_calls["GetSecretValue"] * 1000 / reads, 2),
        "cached_read_p50_us": round(percentiles[49], 1),
        "cached_read_p99_us": round(percentiles[98], 1),
        "details": {"reads": reads, "first_read_us": round(timings[0], 1),
                    "cache_seconds_max": client.MAX_CACHE_SECONDS},
    }


def _any_connected_advertiser() -> str:
    from adsauth import wiring
    from adsauth.models import AdvertiserStatus

    return next(a.advertiser_id for a in wiring.store().list_advertisers() if a.status is AdvertiserStatus.CONNECTED)


def refresh_calls(stack, clock: ShiftClock, calls: AwsCalls) -> dict:
    """Every connected advertiser made due (time travel), one scheduled run (dispatcher, then
    the worker on the queue), then one run with nothing due: AWS calls per refresh and per idle
    dispatcher run, in the per-advertiser layout (one job per advertiser; the packed layout's
    calls are counted on the simulated day, ``bench.layouts``)."""
    with stack.environment(TOKEN_LAYOUT="per_advertiser"):
        scheduler = stack.scheduler()
        clock.offset += 3600 - 600  # 10 minutes left on every token: inside the lead window
        with calls.counting() as busy:
            dispatched, report = scheduler.tick()
        if not dispatched or report.processed != dispatched:
            raise RuntimeError(f"the refresh run did not refresh every due advertiser ({dispatched}, {report})")
        clock.offset += 60
        with calls.counting() as idle:
            idle_dispatched, _ = scheduler.tick()
    # the local scheduler's own SQS calls stand for Lambda's event source; they are priced apart
    event_source = ("sqs:ReceiveMessage", "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes")
    per_refresh = {k: round(v / dispatched, 2) for k, v in busy.items() if k not in event_source}
    per_idle_run = {k: v for k, v in idle.items() if k not in event_source}
    return {"refreshed": dispatched, "per_refresh_incl_its_dispatch": per_refresh,
            "per_idle_dispatch": per_idle_run, "idle_dispatched": idle_dispatched}


def run(*, onboarding_runs: int, reads: int) -> dict:
    from adsauth import client, wiring
    from local.stack import LocalStack

    clock = ShiftClock()
    saved_clock = wiring.clock
    wiring.clock = clock
    calls = AwsCalls()
    try:
        with calls.installed(), LocalStack(clock=clock) as stack:
            figure1, per_callback = onboarding(stack, calls, onboarding_runs)
            figure4 = downstream_reads(reads)
            refresh = refresh_calls(stack, clock, calls)
    finally:
        wiring.clock = saved_clock
        client.clear_cache()
    return {"onboarding": figure1, "reads": figure4,
            "aws_calls": {"per_callback": per_callback, **refresh}}
