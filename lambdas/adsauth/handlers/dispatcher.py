"""The scheduled run (EventBridge, every minute by default): queue every advertiser whose access
token, or profile list, is due. A query per shard of the ``byExpiry`` index, never a scan; no
secret is touched here."""

from __future__ import annotations

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from adsauth.handlers.common import logger
from adsauth.wiring import now, refresher

tracer = Tracer(service="adsauth")
metrics = Metrics(service="adsauth")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    dispatched = refresher().dispatch_due(now())
    metrics.add_metric(name="RefreshDispatched", unit=MetricUnit.Count, value=dispatched)
    logger.info("refresh run", extra={"dispatched": dispatched})
    return {"dispatched": dispatched}
