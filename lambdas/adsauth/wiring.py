"""Builds the adapters once per process, lazily (nothing at import: cold starts stay small).

``clock`` is the one source of "now" for the handlers and the domain objects built here; it is
``time.time`` in Lambda, and local tests replace it to travel in time (the LwA emulator shares it).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from adsauth.errors import ClientMisconfigured
from adsauth.settings import Settings, get_settings

# Each adapter is imported by the factory that builds it. The HTTP ones bring urllib3, which
# boto3 imports too when the first AWS client is made: a request answered without AWS (a result
# page, a callback refused for its query) loads neither.
if TYPE_CHECKING:
    from adsauth.adapters.ads import AdsApiHttpClient
    from adsauth.adapters.http import HttpClient
    from adsauth.adapters.lwa import ClientCredentials, LwaHttpClient
    from adsauth.adapters.table import DynamoStore
    from adsauth.adapters.vault import SecretsManagerVault
    from adsauth.onboarding import Onboarding
    from adsauth.refresher import Refresher

CLIENT_SECRET_MAX_AGE = 300  # seconds; a rotated client secret is picked up within 5 minutes

clock: Callable[[], float] = time.time


def now() -> float:
    """The current time from ``clock`` (looked up at each call, so replacing it takes effect)."""
    return clock()


@lru_cache(maxsize=1)
def boto3_session():
    import boto3

    return boto3.session.Session()


@lru_cache(maxsize=1)
def table():
    return boto3_session().resource("dynamodb").Table(get_settings().table_name)


@lru_cache(maxsize=1)
def http_client() -> HttpClient:
    from adsauth.adapters.http import HttpClient

    s = get_settings()
    return HttpClient(
        timeout_seconds=s.http_timeout_seconds,
        max_attempts=s.http_max_attempts,
        backoff_cap_seconds=s.http_backoff_cap_seconds,
    )


def client_credentials(settings: Settings | None = None) -> ClientCredentials:
    """The LwA client from Secrets Manager, cached in memory for ``CLIENT_SECRET_MAX_AGE``: by
    Powertools parameters in the functions, by ``_get_secret_json`` where Powertools is not
    installed (the ``adsauth`` command needs only boto3)."""
    from adsauth.adapters.lwa import parse_client_secret

    s = settings or get_settings()
    try:
        from aws_lambda_powertools.utilities import parameters
    except ImportError:
        value = _get_secret_json(s.client_secret_name)
    else:
        try:
            value = parameters.get_secret(s.client_secret_name, transform="json", max_age=CLIENT_SECRET_MAX_AGE)
        except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError):
            raise ClientMisconfigured() from None
    return parse_client_secret(value, s.client_id)


# name -> (monotonic time fetched, parsed value); what Powertools' cache holds, without Powertools
_secret_cache: dict[str, tuple[float, object]] = {}


def _get_secret_json(name: str) -> object:
    """``parameters.get_secret(name, transform="json", max_age=CLIENT_SECRET_MAX_AGE)`` in plain
    boto3, with its error mapping: any failure to read or parse is ClientMisconfigured (never
    chained: a parse error could quote the value), and failures are not cached."""
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    cached = _secret_cache.get(name)
    if cached is not None and time.monotonic() - cached[0] < CLIENT_SECRET_MAX_AGE:
        return cached[1]
    try:
        answer = boto3_session().client("secretsmanager").get_secret_value(SecretId=name)
        value = json.loads(answer["SecretString"] if "SecretString" in answer else answer["SecretBinary"])
    except (BotoCoreError, ClientError, KeyError, ValueError):  # ValueError: JSON and UTF-8 errors
        raise ClientMisconfigured() from None
    _secret_cache[name] = (time.monotonic(), value)
    return value


@lru_cache(maxsize=1)
def lwa_client() -> LwaHttpClient:
    from adsauth.adapters.lwa import LwaHttpClient

    s = get_settings()
    return LwaHttpClient(http=http_client(), endpoints=s.endpoints, credentials=client_credentials, clock=now)


@lru_cache(maxsize=1)
def ads_client() -> AdsApiHttpClient:
    from adsauth.adapters.ads import AdsApiHttpClient

    s = get_settings()
    return AdsApiHttpClient(http=http_client(), endpoints=s.endpoints, client_id=s.client_id)


@lru_cache(maxsize=1)
def store() -> DynamoStore:
    from adsauth.adapters.table import DynamoStore

    s = get_settings()
    return DynamoStore(table=table(), schedule=s.due_schedule, events_enabled=bool(s.event_bus_name))


@lru_cache(maxsize=1)
def publisher():
    """EventBridge for lifecycle events (``EVENT_BUS_NAME``); None without a bus."""
    from adsauth.adapters.outbox import EventBridgePublisher

    s = get_settings()
    if not s.event_bus_name:
        return None
    return EventBridgePublisher(client=boto3_session().client("events"), bus_name=s.event_bus_name)


@lru_cache(maxsize=1)
def mailer():
    """SES for invitation and re-consent e-mails (from ``SES_FROM_ADDRESS``); None without one."""
    from adsauth.adapters.notify import SesMailer

    s = get_settings()
    return SesMailer(client=boto3_session().client("ses"), from_address=s.ses_from_address) if s.ses_from_address else None


@lru_cache(maxsize=1)
def vault() -> SecretsManagerVault:
    from adsauth.adapters.vault import SecretsManagerVault

    s = get_settings()
    return SecretsManagerVault(
        client=boto3_session().client("secretsmanager"),
        prefix=s.secret_prefix,
        kms_key_id=s.secrets_kms_key_id,
        refresh_readers=s.refresh_secret_readers,
    )


@lru_cache(maxsize=1)
def onboarding() -> Onboarding:
    from adsauth.onboarding import Onboarding  # only the API functions: the dispatcher and worker never load it

    return Onboarding(
        settings=get_settings(), store=store(), vault=vault(), lwa=lwa_client(), ads=ads_client(), clock=now,
        publisher=publisher(),
    )


@lru_cache(maxsize=1)
def refresher() -> Refresher:
    """The refresher with the queue (dispatcher) and the alert topic (worker) when configured;
    without a topic, alerts go to the log."""
    from adsauth.adapters.notify import LogNotifier, SnsNotifier, SqsRefreshQueue
    from adsauth.refresher import Refresher

    s = get_settings()
    if s.alert_topic_arn:
        notifier = SnsNotifier(client=boto3_session().client("sns"), topic_arn=s.alert_topic_arn)
    else:
        notifier = LogNotifier(_alert_logger())
    queue = SqsRefreshQueue(client=boto3_session().client("sqs"), queue_url=s.refresh_queue_url) if s.refresh_queue_url else None
    return Refresher(
        settings=s, store=store(), vault=vault(), lwa=lwa_client(), ads=ads_client(),
        notifier=notifier, queue=queue, clock=now, publisher=publisher(), mailer=mailer(),
    )


def _alert_logger():
    """Powertools' structured Logger in the functions; where Powertools is not installed (the
    ``adsauth`` command), the standard library's, with the alert's fields in the message, which
    a plain handler would otherwise drop."""
    try:
        from aws_lambda_powertools import Logger
    except ImportError:
        import json
        import logging

        class FieldsInMessage(logging.LoggerAdapter):
            def process(self, msg, kwargs):
                fields = kwargs.get("extra")
                return (f"{msg} {json.dumps(fields, default=str)}" if fields else msg), kwargs

        return FieldsInMessage(logging.getLogger("adsauth"), {})
    return Logger(service="adsauth")


def reset() -> None:
    """Forget every cached adapter (tests that change the environment call this)."""
    for factory in (boto3_session, table, http_client, lwa_client, ads_client, store, vault, publisher, mailer,
                    onboarding, refresher):
        factory.cache_clear()
    _secret_cache.clear()
    get_settings.cache_clear()
