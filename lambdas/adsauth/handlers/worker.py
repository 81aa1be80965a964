"""The refresh worker: an SQS batch of jobs, ``{"advertiser_id": ...}`` (one refresh) or a pack's
(``adsauth.packs.PackJob``: its due members and joiners, refreshed together, ``pack_job``).

Partial batch failures: a job that failed transiently (LwA 429/5xx/timeouts after the HTTP
retries) is reported back so SQS delivers it again; after the queue's ``maxReceiveCount`` it moves
to the DLQ, and the advertiser's ``last_refresh_error`` says why. Everything else is acknowledged:
duplicates and fresh tokens cost nothing, a revoked grant is final (``needs_reauth``), and while
LwA refuses our client the jobs are dropped on purpose (the dispatcher finds those advertisers
again once the pause ends).

The records of a batch are refreshed at once (``RECORDS_AT_ONCE`` threads): a refresh is mostly
waiting on LwA, so a batch of ten takes about as long as one refresh, and the parallel calls to
LwA are bounded by the event source's maximum concurrency times ``RECORDS_AT_ONCE``. Each record's
outcome still goes into ``batchItemFailures`` on its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from adsauth.errors import AdvertiserUnknown, LwaError
from adsauth.handlers.common import log_unexpected, logger
from adsauth.models import RefreshResult
from adsauth.wiring import refresher

metrics = Metrics(service="adsauth")

RECORDS_AT_ONCE = 10  # the SQS batch size: every record of a batch at once (a pack job's advertisers too)
# "refused": LwA refused the request itself (invalid_request, an unknown code): acknowledged, not
# delivered again (the same request gets the same answer), but it counts as a failed refresh
OUTCOME_METRICS = {"refreshed": "RefreshOk", "needs_reauth": "NeedsReauth", "client_invalid": "LwaInvalidClient",
                   "refused": "RefreshFailed"}


class RefreshFailed(Exception):
    """Tells the batch processor to report the record; the message is a fixed error code."""


class ConcurrentBatchProcessor(BatchProcessor):
    """Powertools' SQS batch processor, handling the batch's records at once instead of one by
    one; the per-record bookkeeping (successes, failures, the partial response) is unchanged."""

    def process(self) -> list[tuple]:
        if len(self.records) < 2:
            return super().process()
        workers = min(len(self.records), RECORDS_AT_ONCE)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
            return list(pool.map(self._process_record, self.records))


_metrics_lock = threading.Lock()


def add_metric(*, name: str) -> None:
    # Powertools' metric set is not safe for concurrent writers: two threads adding the first
    # value of a metric at once would lose one of them
    with _metrics_lock:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def record_handler(record: SQSRecord, lambda_context=None) -> str:
    from adsauth.adapters.notify import parse_job

    job = parse_job(record.body)
    if job is not None and not isinstance(job, str):
        return pack_job(job, record, lambda_context)
    advertiser_id = job
    if advertiser_id is None:
        logger.warning("malformed refresh job dropped", extra={"message_id": record.message_id})
        return "dropped"
    try:
        result = refresher().refresh(advertiser_id)
    except AdvertiserUnknown:
        logger.warning("refresh job for an unknown advertiser dropped", extra={"advertiser_id": advertiser_id})
        return "dropped"
    except LwaError as exc:
        add_metric(name="RefreshFailed")
        logger.warning(
            "refresh failed, SQS delivers the job again",
            extra={
                "advertiser_id": advertiser_id,
                "reason": exc.code,
                "receive_count": record.attributes.approximate_receive_count,
            },
        )
        raise RefreshFailed(exc.code) from None
    except Exception as exc:
        add_metric(name="RefreshFailed")
        log_unexpected(exc)
        raise RefreshFailed("unexpected_error") from None
    report(result)
    return result.outcome


def pack_job(job, record: SQSRecord, context=None) -> str:
    """A pack's job (``adsauth.pack_refresh``): its advertisers refreshed ``RECORDS_AT_ONCE`` at a
    time, each reported; none is started once less than ``PACK_MARGIN_SECONDS`` of the invocation
    is left (what it takes to store the pack). When one failed (LwA unavailable, no time left, a
    write) the job is reported failed, so SQS delivers it again, as a job of its own would be."""
    from adsauth.deadline import Deadline
    from adsauth.packs import PACK_MARGIN_SECONDS

    deadline = Deadline.from_context(context, margin_seconds=PACK_MARGIN_SECONDS)
    try:
        with ThreadPoolExecutor(max_workers=RECORDS_AT_ONCE, thread_name_prefix="pack") as pool:
            results = refresher().refresh_pack(job, run_all=lambda f, items: list(pool.map(f, items)),
                                               deadline=deadline)
    except Exception as exc:
        add_metric(name="RefreshFailed")
        log_unexpected(exc)
        raise RefreshFailed("pack_write_failed") from None
    failed = [r for r in results if r.outcome == "failed"]
    for result in results:
        report(result)
    logger.info("pack job done", extra={"pack": job.pack_id, "advertisers": len(results),
                                        "refreshed": sum(r.outcome == "refreshed" for r in results),
                                        "failed": len(failed)})
    if failed:
        # as a job of its own would be: SQS delivers the pack's job again (it refreshes only what is
        # still due), and after maxReceiveCount it goes to the DLQ. The dispatcher finds these
        # advertisers again at its next run too (their deadlines were put back), whichever is first.
        add_metric(name="RefreshFailed")
        raise RefreshFailed(failed[0].reason or "refresh_failed")
    return "pack"


def report(result: RefreshResult) -> None:
    if result.outcome in OUTCOME_METRICS:
        add_metric(name=OUTCOME_METRICS[result.outcome])
    if result.rotated:
        add_metric(name="RefreshRotated")
    if result.reason == "grant_expired":
        add_metric(name="GrantExpired")
    if result.grant_expiring:  # the grant-expiring alarm: ends within 7 days, not re-consented
        add_metric(name="GrantsExpiringSoon")
    if result.reconsent_lead is not None:
        add_metric(name="ReconsentStarted")
    logger.info(
        "refresh job done",
        extra={
            "advertiser_id": result.advertiser_id,
            "outcome": result.outcome,
            "reason": result.reason,
            "rotated": result.rotated,
            "reconsent_lead_days": result.reconsent_lead,
            "token_expires_at": result.token_expires_at,
            "regions_pending": list(result.profiles.regions_pending) if result.profiles else None,
        },
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    # A processor per invocation: it keeps the batch's state, and local tests run two at once.
    # A batch that failed entirely is reported record by record too, instead of as an error.
    # The adapters are built here, once, before the records' threads share them (creating boto3
    # clients from one session is not thread-safe). If that fails, each record fails on its own
    # below and the log says where.
    try:
        refresher()
    except Exception:  # noqa: BLE001
        pass
    processor = ConcurrentBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
