"""Outbound messages: refresh jobs to SQS (the dispatcher), alerts to SNS (the worker) and
e-mail through SES (the worker's re-consents, the CLI's invitations).

None ever carries a token: a job is ``{"advertiser_id": ...}`` or a pack's (``packs.PackJob``: ids only), an alert names an advertiser
and says what to do; only an e-mail to the advertiser carries its invitation link.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from adsauth.errors import AdsAuthError

SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries
SUBJECT_MAX = 100  # SNS: ASCII, no line breaks, at most 100 characters
_NOT_SUBJECT = re.compile(r"[^\x20-\x7e]")
ADVERTISER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def job_body(advertiser_id: str) -> str:
    """A refresh job: the advertiser's id and nothing else."""
    return json.dumps({"advertiser_id": advertiser_id})


def parse_job(body: str | None):
    """A refresh job: an advertiser id (str), a ``PackJob``, or None when malformed."""
    from adsauth.packs import parse_pack_job

    try:
        job = json.loads(body or "")
    except ValueError:
        return None
    if isinstance(job, dict) and "pack" in job:
        return parse_pack_job(job)
    return job_advertiser(body)


def job_advertiser(body: str | None) -> str | None:
    """The advertiser id of a refresh job, or None when the body is not a well-formed job."""
    try:
        job = json.loads(body or "")
    except ValueError:
        return None
    advertiser_id = job.get("advertiser_id") if isinstance(job, dict) else None
    return advertiser_id if isinstance(advertiser_id, str) and ADVERTISER_ID.match(advertiser_id) else None


class QueueSendFailed(Exception):
    """SQS refused some entries of a batch (their advertisers are found again next run)."""

    def __init__(self, failed: int) -> None:
        self.failed = failed
        super().__init__(f"SQS refused {failed} refresh job(s)")


class SqsRefreshQueue:
    def __init__(self, *, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, advertiser_ids: Sequence[str]) -> None:
        self._send([job_body(advertiser_id) for advertiser_id in advertiser_ids])

    def send_packs(self, jobs: Sequence) -> None:
        self._send([job.body() for job in jobs])

    def _send(self, bodies: list[str]) -> None:
        failed = 0
        for start in range(0, len(bodies), SQS_BATCH):
            chunk = bodies[start : start + SQS_BATCH]
            response = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
            )
            failed += len(response.get("Failed", []))
        if failed:
            raise QueueSendFailed(failed)


class SnsNotifier:
    def __init__(self, *, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def alert(self, subject: str, message: str) -> None:
        subject = _NOT_SUBJECT.sub("?", subject)[:SUBJECT_MAX]
        self.client.publish(TopicArn=self.topic_arn, Subject=subject, Message=message)


class EmailNotSent(AdsAuthError):
    """SES did not send the message (throttled, sending paused, a configuration error). The
    message is fixed: SES's own names addresses and identities."""

    code = "email_not_sent"
    message = "SES did not send the e-mail; check the account's SES sending status in the stack's region."


class EmailRejected(EmailNotSent):
    """SES refused the message (``MessageRejected``): in the sandbox (an account without
    production access) SES sends only to verified addresses, and from a verified identity."""

    code = "email_rejected"
    message = (
        "SES rejected the e-mail (MessageRejected): the account is in the SES sandbox, which delivers only to "
        "verified addresses, or SES_FROM_ADDRESS is not in a verified identity; verify the recipient in SES "
        "or request production access."
    )


REJECTED = {"MessageRejected", "MailFromDomainNotVerifiedException", "MailFromDomainNotVerified"}


class SesMailer:
    """E-mail through SES from ``SES_FROM_ADDRESS``: the invitation and re-consent messages.
    A refusal raises ``EmailRejected``, any other failure ``EmailNotSent`` (fixed messages)."""

    def __init__(self, *, client: Any, from_address: str) -> None:
        self.client = client
        self.from_address = from_address

    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """One message: the plain-text part, and the HTML part when given (SES sends both as
        multipart/alternative; mail apps show the one they prefer)."""
        from botocore.exceptions import ClientError

        body = {"Text": {"Data": text, "Charset": "UTF-8"}}
        if html is not None:
            body["Html"] = {"Data": html, "Charset": "UTF-8"}
        try:
            self.client.send_email(
                Source=self.from_address,
                Destination={"ToAddresses": [to]},
                Message={"Subject": {"Data": subject, "Charset": "UTF-8"}, "Body": body},
            )
        except ClientError as exc:
            # SES's message names the addresses and the identity: never passed on
            code = exc.response.get("Error", {}).get("Code", "")
            raise (EmailRejected() if code in REJECTED else EmailNotSent()) from None


class LogNotifier:
    """Where alerts go without a topic (a deployment without ALERT_TOPIC_ARN, the ops CLI)."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def alert(self, subject: str, message: str) -> None:
        self.logger.warning("alert", extra={"subject": subject, "alert": message})
