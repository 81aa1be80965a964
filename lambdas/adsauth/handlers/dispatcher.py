"""The scheduled run (EventBridge, every minute by default): queue every advertiser whose access
token, or profile list, is due. A query per shard of the ``byExpiry`` index, never a scan; no
secret is touched here.

It also reports ``OldestTokenAgeSeconds``: the age of the oldest access token among the connected
advertisers the run finds due (from the same query: ``dispatch_due(on_due=…)``). At or above an
access token's lifetime, that token expired without a refresh (the ``token-expired`` alarm). An
advertiser whose refresh keeps failing is found again after each snooze, so a stuck token shows
up every few minutes. No figure while LwA refuses our client (the run stops; its own alarm fires).

Runs may overlap (the function has no reserved concurrency): each takes the dispatch lease for
what is left of its invocation (``Refresher.dispatch_due``). A run that finds it held queues and
relays nothing, logs, counts ``DispatchSkipped`` and returns normally (no retry).
"""

from __future__ import annotations

from typing import Iterable

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from adsauth.handlers.common import log_unexpected, logger
from adsauth.models import DueAdvertiser
from adsauth.dispatch import DISPATCH_LEASE_SECONDS
from adsauth.settings import ACCESS_TOKEN_SECONDS
from adsauth.wiring import now, refresher

metrics = Metrics(service="adsauth")


def oldest_token_age(due: Iterable[DueAdvertiser], at: float) -> float | None:
    """Seconds since the oldest of these access tokens was issued (LwA grants them for
    ``ACCESS_TOKEN_SECONDS``); None when none of them has a token."""
    expiries = [d.token_expires_at for d in due if d.token_expires_at is not None]
    return at - (min(expiries) - ACCESS_TOKEN_SECONDS) if expiries else None


def lease_seconds(context) -> float:
    """How long this run may hold the dispatch lease: what is left of the invocation (Lambda
    ends it then, so a lease of a run that died lapses by itself), at most the timeout."""
    try:
        remaining = context.get_remaining_time_in_millis() / 1000
    except AttributeError:  # invoked without a Lambda context (a script)
        return DISPATCH_LEASE_SECONDS
    return min(max(remaining, 1.0), DISPATCH_LEASE_SECONDS)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    at = now()
    ages: list[float] = []

    def report(due: list[DueAdvertiser]) -> None:
        try:
            age = oldest_token_age(due, at)
        except Exception as exc:  # the figure must never stop the run
            log_unexpected(exc)
            return
        if age is not None:
            ages.append(age)
            metrics.add_metric(name="OldestTokenAgeSeconds", unit=MetricUnit.Seconds, value=age)

    dispatched = refresher().dispatch_due(at, on_due=report, lease_seconds=lease_seconds(context))
    if dispatched is None:  # an overlapping run holds the lease: it queues and relays
        metrics.add_metric(name="DispatchSkipped", unit=MetricUnit.Count, value=1)
        logger.info("refresh run skipped: another run holds the dispatch lease")
        return {"dispatched": 0, "events_relayed": 0, "skipped": True}
    metrics.add_metric(name="RefreshDispatched", unit=MetricUnit.Count, value=dispatched)
    relayed = refresher().relay_events()  # lifecycle events a crash or an EventBridge failure left behind
    logger.info("refresh run", extra={"dispatched": dispatched, "events_relayed": relayed,
                                      "oldest_token_age_seconds": ages[0] if ages else None})
    return {"dispatched": dispatched, "events_relayed": relayed}
