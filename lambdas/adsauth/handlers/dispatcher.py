"""The scheduled run (EventBridge, every minute by default): queue every advertiser whose access
token, or profile list, is due. A query per shard of the ``byExpiry`` index, never a scan; no
secret is touched here.

It also reports ``OldestTokenAgeSeconds``: the age of the oldest access token among the connected
advertisers the run finds due (from the same query: ``dispatch_due(on_due=…)``). At or above an
access token's lifetime, that token expired without a refresh (the ``token-expired`` alarm). An
advertiser whose refresh keeps failing is found again after each snooze, so a stuck token shows
up every few minutes. No figure while LwA refuses our client (the run stops; its own alarm fires).
"""

from __future__ import annotations

from typing import Iterable

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from adsauth.handlers.common import log_unexpected, logger
from adsauth.models import DueAdvertiser
from adsauth.settings import ACCESS_TOKEN_SECONDS
from adsauth.wiring import now, refresher

tracer = Tracer(service="adsauth")
metrics = Metrics(service="adsauth")


def oldest_token_age(due: Iterable[DueAdvertiser], at: float) -> float | None:
    """Seconds since the oldest of these access tokens was issued (LwA grants them for
    ``ACCESS_TOKEN_SECONDS``); None when none of them has a token."""
    expiries = [d.token_expires_at for d in due if d.token_expires_at is not None]
    return at - (min(expiries) - ACCESS_TOKEN_SECONDS) if expiries else None


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
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

    dispatched = refresher().dispatch_due(at, on_due=report)
    metrics.add_metric(name="RefreshDispatched", unit=MetricUnit.Count, value=dispatched)
    relayed = refresher().relay_events()  # lifecycle events a crash or an EventBridge failure left behind
    logger.info("refresh run", extra={"dispatched": dispatched, "events_relayed": relayed,
                                      "oldest_token_age_seconds": ages[0] if ages else None})
    return {"dispatched": dispatched, "events_relayed": relayed}
