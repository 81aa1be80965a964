"""wiring where Powertools is not installed (the ``adsauth`` command with boto3 alone): the LwA client
secret is read with plain boto3, cached as long and refused with the same error as through
Powertools parameters in the functions; alerts without a topic go to the standard library's log."""

from __future__ import annotations

import json
import logging
import sys

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from adsauth import wiring
from adsauth.errors import ClientMisconfigured
from adsauth.settings import Settings
from tests.conftest import remember
from tests.moto_region import in_process_aws

REGION = "sa-east-1"  # not the session stack's region (moto's backends are shared in-process)
NAME = "test/lwa_client"
CLIENT_ID = "amzn1.application-oa2-client.wiringtest"
SECRET = "wiring-test-client-secret-0001"
SETTINGS = Settings(table_name="adsauth-wiring-test", public_base_url="https://x.test", client_id=CLIENT_ID,
                    client_secret_name=NAME, secret_prefix="test/advertisers/")


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    remember(SECRET)
    in_process_aws(monkeypatch, REGION)
    wiring.reset()
    parameters.clear_caches()
    mock = mock_aws()
    mock.start(reset=False)  # (the session stack's moto server is left alone)
    try:
        yield
    finally:
        # (by its regional address: a test may have pointed the environment elsewhere)
        sm = boto3.client("secretsmanager", endpoint_url=f"https://secretsmanager.{REGION}.amazonaws.com")
        try:
            sm.delete_secret(SecretId=NAME, ForceDeleteWithoutRecovery=True)
        except sm.exceptions.ResourceNotFoundException:
            pass
        mock.stop(remove_data=False)
        wiring.reset()
        parameters.clear_caches()


@pytest.fixture(params=["powertools", "boto3"])
def source(request, monkeypatch) -> str:
    """Each case runs with Powertools importable (the functions) and without (the CLI)."""
    if request.param == "boto3":
        without_powertools(monkeypatch)
    return request.param


def without_powertools(monkeypatch) -> None:
    # None in sys.modules makes an import raise ImportError, the submodules' too (a loaded
    # submodule would otherwise be found by its full name)
    for name in [m for m in sys.modules if m == "aws_lambda_powertools" or m.startswith("aws_lambda_powertools.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "aws_lambda_powertools", None)
    with pytest.raises(ImportError):
        from aws_lambda_powertools.utilities import parameters  # noqa: F401


def put(value: str) -> None:
    sm = boto3.client("secretsmanager")
    try:
        sm.put_secret_value(SecretId=NAME, SecretString=value)
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=NAME, SecretString=value)


def test_reads_the_client_and_keeps_it_for_the_cache_lifetime(source):
    put(json.dumps({"client_id": CLIENT_ID, "client_secret": SECRET}))
    assert wiring.client_credentials(SETTINGS).client_secret == SECRET
    put(json.dumps({"client_id": CLIENT_ID, "client_secret": SECRET + "-rotated"}))
    assert wiring.client_credentials(SETTINGS).client_secret == SECRET  # cached: no read per call


def test_without_powertools_a_rotated_secret_is_read_once_the_cache_lifetime_has_passed(monkeypatch):
    without_powertools(monkeypatch)
    put(json.dumps({"client_id": CLIENT_ID, "client_secret": SECRET}))
    assert wiring.client_credentials(SETTINGS).client_secret == SECRET
    put(json.dumps({"client_id": CLIENT_ID, "client_secret": SECRET + "-rotated"}))
    fetched, value = wiring._secret_cache[NAME]
    wiring._secret_cache[NAME] = (fetched - wiring.CLIENT_SECRET_MAX_AGE + 1, value)
    assert wiring.client_credentials(SETTINGS).client_secret == SECRET  # still within the lifetime
    wiring._secret_cache[NAME] = (fetched - wiring.CLIENT_SECRET_MAX_AGE - 1, value)
    assert wiring.client_credentials(SETTINGS).client_secret == SECRET + "-rotated"
    wiring.reset()
    assert NAME not in wiring._secret_cache


@pytest.mark.parametrize("stored", [
    None,  # no such secret
    "{not json " + SECRET,
    json.dumps(["a", "list"]),
    json.dumps({"client_id": CLIENT_ID}),
    json.dumps({"client_id": "amzn1.application-oa2-client.other", "client_secret": SECRET}),
])
def test_a_missing_or_malformed_client_is_misconfigured_and_not_cached(source, stored):
    if stored is not None:
        put(stored)
    with pytest.raises(ClientMisconfigured) as refused:
        wiring.client_credentials(SETTINGS)
    error = refused.value  # nothing chained that could quote the value
    assert error.__cause__ is None and (error.__suppress_context__ or error.__context__ is None)
    assert SECRET not in str(refused.value)
    put(json.dumps({"client_id": CLIENT_ID, "client_secret": SECRET}))
    if stored is None:  # a failed read is not remembered: the secret stored since is read
        assert wiring.client_credentials(SETTINGS).client_secret == SECRET


def test_an_unreachable_secrets_manager_is_misconfigured(source, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    wiring.reset()
    parameters.clear_caches()  # Powertools' provider keeps the client it made first: a new one
    with pytest.raises(ClientMisconfigured):
        wiring.client_credentials(SETTINGS)


def test_without_powertools_alerts_go_to_the_standard_log_with_their_fields(monkeypatch, caplog):
    from adsauth.adapters.notify import LogNotifier

    without_powertools(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="adsauth"):
        LogNotifier(wiring._alert_logger()).alert("Refresh failed", "advertiser adv-1: LwA unavailable")
    (record,) = [r for r in caplog.records if r.name == "adsauth"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == 'alert {"subject": "Refresh failed", "alert": "advertiser adv-1: LwA unavailable"}'
    assert record.subject == "Refresh failed"  # the fields stay on the record for a structured handler


def test_with_powertools_alerts_keep_its_structured_logger():
    from aws_lambda_powertools import Logger

    assert isinstance(wiring._alert_logger(), Logger)
