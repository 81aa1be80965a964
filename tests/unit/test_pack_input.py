"""Bad input at the packed layout's new entry points: a pack job's message body (the worker), the
``TOKEN_LAYOUT`` setting, the ``token_layout`` key and ``migrate-layout``'s arguments. Each gets a
clear, fixed refusal, and nothing is refreshed, stored or moved."""

from __future__ import annotations

import json

import pytest

from adsauth import cli, migrate, packs
from adsauth.adapters.notify import parse_job
from adsauth.settings import SettingsError, settings_from_env
from infra.config import ConfigError, load_config

PACK = "0123456789abcdef"
BASE_ENV = {"TABLE_NAME": "t", "PUBLIC_BASE_URL": "https://auth.example.com", "LWA_CLIENT_ID": "amzn1.x",
            "LWA_CLIENT_SECRET_NAME": "c", "SECRET_PREFIX": "p/"}


@pytest.mark.parametrize("body", [
    "", "not json", "[]", json.dumps({"pack": None}),
    json.dumps({"pack": "../../etc"}), json.dumps({"pack": PACK.upper()}), json.dumps({"pack": PACK + "0"}),
    json.dumps({"pack": PACK, "members": "adv-1"}), json.dumps({"pack": PACK, "members": [1]}),
    json.dumps({"pack": PACK, "joiners": ["adv/1"]}), json.dumps({"pack": PACK, "members": ["a" * 65]}),
    json.dumps({"pack": PACK, "members": [f"adv-{i}" for i in range(packs.MAX_MEMBERS + 1)]}),  # oversized
    json.dumps({"pack": PACK, "members": ["adv-1\nx"]}), json.dumps({"pack": PACK, "members": ["adv-1\n"]}),
    json.dumps({"pack": PACK + "\n", "members": ["adv-1"]}),
])
def test_a_malformed_pack_job_is_no_job(body):
    assert parse_job(body) is None


def test_a_pack_job_names_each_advertiser_once():
    job = parse_job(json.dumps({"pack": PACK, "members": ["a", "b", "a"], "joiners": ["b", "c", "c"]}))
    assert job == packs.PackJob(PACK, ("a", "b"), ("c",))


def test_the_worker_drops_a_malformed_pack_job_without_refreshing(monkeypatch):
    from adsauth.handlers import worker

    monkeypatch.setattr(worker, "refresher", lambda: pytest.fail("no refresh for a malformed job"))
    record = type("Record", (), {"body": json.dumps({"pack": "nope", "members": ["adv-1"]}), "message_id": "m1"})()
    assert worker.record_handler(record) == "dropped"


@pytest.mark.parametrize("value", ["bogus", "PACKED", "packed;rm"])
def test_an_unknown_token_layout_setting_is_refused_with_its_name(value):
    with pytest.raises(SettingsError, match="TOKEN_LAYOUT must be packed or per_advertiser"):
        settings_from_env({**BASE_ENV, "TOKEN_LAYOUT": value})


def test_a_missing_token_layout_setting_keeps_the_layout_the_function_was_built_for():
    assert settings_from_env(BASE_ENV).token_layout == "per_advertiser"


@pytest.mark.parametrize("value", ["bogus", None, 1, ["packed"]])
def test_an_unknown_token_layout_key_is_refused_by_the_config(value):
    raw = json.loads(open("cdk.json").read())["context"]["adsauth"]
    with pytest.raises(ConfigError) as caught:
        load_config({**raw, "token_layout": value})
    assert any(p.startswith("token_layout must be \"packed\"") for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("argv, message", [
    (["migrate-layout", "--to", "packed", "--pack-size", "0"], "--pack-size must be from 1 to 100"),
    (["migrate-layout", "--to", "packed", "--pack-size", "101"], "--pack-size must be from 1 to 100"),
])
def test_migrate_layout_refuses_a_bad_pack_size_and_moves_nothing(monkeypatch, capsys, argv, message):
    monkeypatch.setenv("TOKEN_LAYOUT", "packed")
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(migrate, "migrate_layout", lambda *a, **k: pytest.fail("nothing may move"))
    from adsauth import settings

    settings.get_settings.cache_clear()
    try:
        assert cli.main(argv) == 2
    finally:
        settings.get_settings.cache_clear()
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["migrate-layout"], ["migrate-layout", "--to", "bogus"],
                                  ["migrate-layout", "--to", "packed", "--pack-size", "ten"]])
def test_migrate_layout_refuses_missing_or_unknown_arguments(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and "usage:" in capsys.readouterr().err
