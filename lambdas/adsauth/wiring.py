"""Builds the adapters once per process, lazily (nothing at import: cold starts stay small)."""

from __future__ import annotations

import time
from functools import lru_cache

from adsauth.adapters.ads import AdsApiHttpClient
from adsauth.adapters.http import HttpClient
from adsauth.adapters.lwa import ClientCredentials, LwaHttpClient, parse_client_secret
from adsauth.errors import ClientMisconfigured
from adsauth.onboarding import Onboarding
from adsauth.settings import Settings, get_settings

CLIENT_SECRET_MAX_AGE = 300  # seconds; a rotated client secret is picked up within 5 minutes


@lru_cache(maxsize=1)
def boto3_session():
    import boto3

    return boto3.session.Session()


@lru_cache(maxsize=1)
def table():
    return boto3_session().resource("dynamodb").Table(get_settings().table_name)


@lru_cache(maxsize=1)
def http_client() -> HttpClient:
    s = get_settings()
    return HttpClient(
        timeout_seconds=s.http_timeout_seconds,
        max_attempts=s.http_max_attempts,
        backoff_cap_seconds=s.http_backoff_cap_seconds,
    )


def client_credentials(settings: Settings | None = None) -> ClientCredentials:
    """The LwA client from Secrets Manager, cached in memory by Powertools parameters."""
    from aws_lambda_powertools.utilities import parameters

    s = settings or get_settings()
    try:
        value = parameters.get_secret(s.client_secret_name, transform="json", max_age=CLIENT_SECRET_MAX_AGE)
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError):
        raise ClientMisconfigured() from None
    return parse_client_secret(value, s.client_id)


@lru_cache(maxsize=1)
def lwa_client() -> LwaHttpClient:
    s = get_settings()
    return LwaHttpClient(http=http_client(), endpoints=s.endpoints, credentials=client_credentials, clock=time.time)


@lru_cache(maxsize=1)
def ads_client() -> AdsApiHttpClient:
    s = get_settings()
    return AdsApiHttpClient(http=http_client(), endpoints=s.endpoints, client_id=s.client_id)


@lru_cache(maxsize=1)
def onboarding() -> Onboarding:
    from adsauth.adapters.table import DynamoStore
    from adsauth.adapters.vault import SecretsManagerVault

    s = get_settings()
    return Onboarding(
        settings=s,
        store=DynamoStore(table=table()),
        vault=SecretsManagerVault(client=boto3_session().client("secretsmanager"), prefix=s.secret_prefix),
        lwa=lwa_client(),
        ads=ads_client(),
    )


def reset() -> None:
    """Forget every cached adapter (tests that change the environment call this)."""
    for factory in (boto3_session, table, http_client, lwa_client, ads_client, onboarding):
        factory.cache_clear()
    get_settings.cache_clear()
