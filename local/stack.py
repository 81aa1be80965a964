"""The whole product on one machine: moto server as AWS, the LwA/Ads emulator, and the local
gateway calling the very handler code that runs in Lambda.

Everything is pointed at the local services through environment variables only
(``AWS_ENDPOINT_URL``, ``LWA_TOKEN_URL_NA`` …): no code is patched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
from contextlib import contextmanager
from typing import Callable

from adsauth import packs, schema

from local.emulator import Emulator
from local.gateway import LocalGateway, Route

CLIENT_ID = "amzn1.application-oa2-client.local0000000000000000000000000"
TABLE_NAME = "adsauth-local"
CLIENT_SECRET_NAME = "adsauth/local/lwa_client"
SECRET_PREFIX = "adsauth/local/advertisers/"
REFRESH_QUEUE = "adsauth-local-refresh"
REFRESH_DLQ = "adsauth-local-refresh-dlq"
ALERT_TOPIC = "adsauth-local-alerts"
EVENT_BUS = "adsauth-local"
EVENTS_QUEUE = "adsauth-local-events"  # a consumer's rule: every adsauth event to this queue
MAX_RECEIVE_COUNT = 5  # as deployed: a job that failed 5 times moves to the DLQ
OPERATOR_KEYS = ("AKIALOCALOPERATOR000", "local-operator-secret-key")  # fake IAM identity for POST /token
# the operator advertisers see on the local pages and e-mails (cdk.json operator_name, support_contact)
OPERATOR_NAME = "Example Agency (local)"
SUPPORT_CONTACT = "support@agency.example"

# The deployed API functions' timeout (infra.constants.API_FUNCTION_TIMEOUT; a test checks): the
# callback's time budget counts down from it, locally as deployed.
API_FUNCTION_TIMEOUT_SECONDS = 20.0
ROUTES = [
    Route("GET", "/connect/{invitation}", "adsauth.handlers.connect:handler",
          function_timeout=API_FUNCTION_TIMEOUT_SECONDS),
    Route("GET", "/result/{outcome}", "adsauth.handlers.connect:handler",
          function_timeout=API_FUNCTION_TIMEOUT_SECONDS),
    Route("GET", "/callback", "adsauth.handlers.callback:handler",
          function_timeout=API_FUNCTION_TIMEOUT_SECONDS),
    Route("POST", "/token", "adsauth.handlers.callback:handler", iam_auth=True,
          function_timeout=API_FUNCTION_TIMEOUT_SECONDS),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stored_tokens(advertiser_id: str, *, pack: str | None = None) -> dict | None:
    """An advertiser's tokens wherever they are stored now (for tests and the demo, which must
    hold in either token layout): in the pack its table item names (``pack``: look in this one
    instead, e.g. the pack it was in before a revoke), else in its own two secrets.

    Returns ``{"refresh_token", "access_token", "expires_at", "where": "pack" | "own", "pack":
    pack id ("" for its own), "members": how many advertisers that access secret serves}``, a token
    missing in that place as None; None when neither place holds any of its tokens. The values are
    tokens: compare them, never print them."""
    import boto3

    prefix = os.environ.get("SECRET_PREFIX", SECRET_PREFIX)
    if pack is None:
        table = boto3.resource("dynamodb").Table(os.environ.get("TABLE_NAME", TABLE_NAME))
        item = table.get_item(Key=schema.advertiser_key(advertiser_id), ConsistentRead=True).get("Item") or {}
        pack = item.get("pack") or ""
    if pack:
        refresh = _entries(_secret_value(packs.refresh_name(prefix, pack)))
        access = _entries(_secret_value(packs.access_name(prefix, pack)))
        r, a = refresh.get(advertiser_id), access.get(advertiser_id)
        if r is not None or a is not None:
            r, a = r or {}, a or {}
            return {"refresh_token": r.get("r"), "access_token": a.get("a"), "expires_at": a.get("e"),
                    "where": "pack", "pack": pack, "members": len(access)}
    refresh = _secret_value(f"{prefix}refresh/{advertiser_id}")
    access = _secret_value(f"{prefix}access/{advertiser_id}")
    if refresh is None and access is None:
        return None
    r, a = refresh or {}, access or {}
    return {"refresh_token": r.get("refresh_token"), "access_token": a.get("access_token"),
            "expires_at": a.get("expires_at"), "where": "own", "pack": "", "members": 1}


def _secret_value(name: str) -> dict | None:
    """A secret's JSON value; None when it does not exist (or is deleted, awaiting removal)."""
    import boto3

    client = boto3.client("secretsmanager")
    try:
        text = client.get_secret_value(SecretId=name)["SecretString"]
    except (client.exceptions.ResourceNotFoundException, client.exceptions.InvalidRequestException):
        return None
    try:
        value = json.loads(text)
    except ValueError:  # never chained: the error could quote the value
        value = None
    return value if isinstance(value, dict) else {}  # malformed: present, holding no token


def _entries(value: dict | None) -> dict[str, dict]:
    entries = (value or {}).get("entries")
    return {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


class LocalStack:
    """Start with ``with LocalStack() as stack:``; ``stack.base_url`` is the API's address."""

    def __init__(self, *, clock: Callable[[], float] | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.clock = clock
        self.extra_env = extra_env or {}
        self.client_secret = secrets.token_hex(32)  # a fresh fake secret per run; never printed
        self.moto = None
        self.emulator: Emulator | None = None
        self.gateway: LocalGateway | None = None
        self._saved_env: dict[str, str | None] = {}
        self.queue_url = self.dlq_url = self.topic_arn = self.events_queue_url = ""

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "LocalStack":
        from moto.server import ThreadedMotoServer

        from local import moto_patches

        moto_patches.apply()  # transactions cost what they touch, not the whole table
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would show URLs
        moto_port = free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        self.emulator = (Emulator(clock=self.clock) if self.clock else Emulator()).start()
        from local.openapi import DOCUMENT_PATH

        self.gateway = LocalGateway(
            ROUTES, stage="local", credentials=OPERATOR_KEYS, openapi=DOCUMENT_PATH.read_bytes()
        ).start()
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "TABLE_NAME": TABLE_NAME,
            "PUBLIC_BASE_URL": self.gateway.base_url,
            "LWA_CLIENT_ID": CLIENT_ID,
            "LWA_CLIENT_SECRET_NAME": CLIENT_SECRET_NAME,
            "SECRET_PREFIX": SECRET_PREFIX,
            "TOKEN_LAYOUT": "packed",  # the default of new stacks (cdk.json token_layout)
            "HTTP_TIMEOUT_SECONDS": "2",
            "HTTP_BACKOFF_CAP_SECONDS": "0.5",
            "POWERTOOLS_SERVICE_NAME": "adsauth",
            "POWERTOOLS_METRICS_NAMESPACE": "adsauth",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_DEV": "false",
            # what a deployed stack sets from cdk.json (operator_name is required there)
            "OPERATOR_NAME": OPERATOR_NAME,
            "SUPPORT_CONTACT": SUPPORT_CONTACT,
            **self.emulator.endpoints_env(),
            **self.extra_env,
        }
        self._set_env(env)
        self.emulator.register_client(CLIENT_ID, self.client_secret, [self.callback_url])
        self._provision()
        return self

    @contextmanager
    def environment(self, **env: str):
        """The handlers' environment changed for the block, the adapters built again on entry and
        on exit (what was set before is put back)."""
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        self._reset_caches()
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._reset_caches()

    def _set_env(self, env: dict[str, str]) -> None:
        for name, value in env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        self._reset_caches()

    def stop(self) -> None:
        if self.gateway:
            self.gateway.stop()
        if self.emulator:
            self.emulator.stop()
        if self.moto:
            self.moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._reset_caches()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- what ops do once after deploying --------------------------------------------------------
    def _provision(self) -> None:
        import boto3

        boto3.client("dynamodb").create_table(**schema.create_table_request(TABLE_NAME))
        self.put_client_secret({"client_id": CLIENT_ID, "client_secret": self.client_secret})
        sqs = boto3.client("sqs")
        self.dlq_url = sqs.create_queue(QueueName=REFRESH_DLQ)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
        self.queue_url = sqs.create_queue(
            QueueName=REFRESH_QUEUE, Attributes={"VisibilityTimeout": "30", "RedrivePolicy": json.dumps(redrive)}
        )["QueueUrl"]
        self.topic_arn = boto3.client("sns").create_topic(Name=ALERT_TOPIC)["TopicArn"]
        # the stack's bus, and a consumer as the README shows one: a rule with an SQS target
        events = boto3.client("events")
        events.create_event_bus(Name=EVENT_BUS)
        self.events_queue_url = sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
        events_queue_arn = sqs.get_queue_attributes(
            QueueUrl=self.events_queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="adsauth-consumer", EventBusName=EVENT_BUS, EventPattern=json.dumps({"source": ["adsauth"]}))
        events.put_targets(Rule="adsauth-consumer", EventBusName=EVENT_BUS,
                           Targets=[{"Id": "consumer", "Arn": events_queue_arn}])
        self._set_env({"REFRESH_QUEUE_URL": self.queue_url, "ALERT_TOPIC_ARN": self.topic_arn,
                       "EVENT_BUS_NAME": EVENT_BUS})

    def put_client_secret(self, value: dict) -> None:
        import boto3

        client = boto3.client("secretsmanager")
        try:
            client.put_secret_value(SecretId=CLIENT_SECRET_NAME, SecretString=json.dumps(value))
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=CLIENT_SECRET_NAME, SecretString=json.dumps(value))
        self._reset_caches()

    @staticmethod
    def _reset_caches() -> None:
        from aws_lambda_powertools.utilities import parameters

        from adsauth import wiring

        wiring.reset()
        parameters.clear_caches()
        try:
            from adsauth.handlers import callback
        except ImportError:
            return
        callback._once.cache_clear()
        callback._idempotency.cache_clear()

    # --- conveniences ----------------------------------------------------------------------------
    def received_events(self, wait_seconds: float = 0.0) -> list[dict]:
        """What the consumer's queue received since the last call (EventBridge envelopes)."""
        import boto3

        sqs, received = boto3.client("sqs"), []
        while True:
            answer = sqs.receive_message(QueueUrl=self.events_queue_url, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=int(wait_seconds))
            messages = answer.get("Messages", [])
            if not messages:
                return received
            for m in messages:
                received.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=m["ReceiptHandle"])
            wait_seconds = 0

    def enable_email(self, from_address: str = "adsauth@agency.example", *, verify: str | None = "address") -> None:
        """SES as ops configure it (``SES_FROM_ADDRESS``, in a verified identity): invitations
        and re-consents are e-mailed; ``sent_emails()`` reads what moto's SES accepted.
        ``verify``: which identity ops verified, ``"address"`` (the from-address itself),
        ``"domain"`` (its domain) or None (none yet: SES rejects the messages, as in a new
        account's sandbox)."""
        import boto3

        ses = boto3.client("ses")
        if verify == "address":
            ses.verify_email_identity(EmailAddress=from_address)
        elif verify == "domain":
            ses.verify_domain_identity(Domain=from_address.rpartition("@")[2])
        self._set_env({"SES_FROM_ADDRESS": from_address})

    def disable_email(self) -> None:
        self._set_env({"SES_FROM_ADDRESS": ""})

    @staticmethod
    def invitation_token(mail) -> str:
        """The invitation token of the link in a sent e-mail (moto keeps its HTML part, where the
        link is an attribute); the token is a secret: compare it or ``remember`` it, never print it."""
        found = re.search(r"/connect/([A-Za-z0-9_-]+)", mail.body)
        assert found, "the e-mail holds no invitation link"
        return found.group(1)

    @staticmethod
    def sent_emails() -> list:
        """Messages moto's SES accepted (the server runs in this process)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)

    def scheduler(self):
        """The EventBridge schedule and the SQS event source, run by hand (see ``local.scheduler``)."""
        from local.scheduler import LocalScheduler

        return LocalScheduler(queue_url=self.queue_url)

    @property
    def base_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.base_url

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/callback"

    def invite(self, name: str = "Acme Outdoor", email: str = "ads@acme.example", region: str = "NA") -> tuple[str, str]:
        """Create an invitation as the ops CLI does; return (advertiser id, link)."""
        from adsauth.regions import Region
        from adsauth.settings import get_settings
        from adsauth.wiring import onboarding

        advertiser, token = onboarding().invite(name=name, email=email, region=Region.parse(region))
        return advertiser.advertiser_id, get_settings().invitation_url(token)
