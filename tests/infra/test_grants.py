"""Grant lifetime settings (``grant_lifetime_days``, ``grant_expiry_from``, ``reconsent_lead_days``)
reach the callback, the dispatcher and the refresh worker as the functions parse them, through the
path ops use: cdk.json's context, app.py, the template."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.infra.cfn import functions_by_handler, render

CONNECT = "adsauth.handlers.connect.handler"
USERS = (
    "adsauth.handlers.callback.handler",
    "adsauth.handlers.dispatcher.handler",
    "adsauth.handlers.worker.handler",
)
VARIABLES = ("GRANT_LIFETIME_DAYS", "GRANT_EXPIRY_FROM", "RECONSENT_LEAD_DAYS")


def _grant_env(cfn: dict, handler: str) -> dict[str, str]:
    env = functions_by_handler(cfn)[handler]["Properties"]["Environment"]["Variables"]
    return {name: env[name] for name in VARIABLES if name in env}


def test_cdk_json_settings_reach_the_functions_that_need_them(app_cfn):
    # APP_OVERRIDES: 180 days, from 2027-01-15, leads [7, 30, 14] (passed on largest first)
    for handler in USERS:
        assert _grant_env(app_cfn, handler) == {
            "GRANT_LIFETIME_DAYS": "180",
            "GRANT_EXPIRY_FROM": "2027-01-15",
            "RECONSENT_LEAD_DAYS": "30,14,7",
        }, handler
    assert _grant_env(app_cfn, CONNECT) == {}


def test_defaults_are_a_365_day_grant_from_2026_06_30_invited_30_7_and_1_days_ahead(cfn):
    for handler in USERS:
        assert _grant_env(cfn, handler) == {
            "GRANT_LIFETIME_DAYS": "365",
            "GRANT_EXPIRY_FROM": "2026-06-30",
            "RECONSENT_LEAD_DAYS": "30,7,1",
        }, handler


def test_the_functions_parse_what_the_stack_gives_them(app_cfn):
    from adsauth.settings import settings_from_env

    for handler in USERS:
        env = {k: render(v) for k, v in functions_by_handler(app_cfn)[handler]["Properties"]["Environment"]["Variables"].items()}
        settings = settings_from_env(env)
        assert settings.grant_lifetime_seconds == 180 * 86400, handler
        assert settings.grant_expiry_from == datetime(2027, 1, 15, tzinfo=timezone.utc).timestamp()
        assert settings.reconsent_lead_days == (30, 14, 7)


def test_the_worker_can_link_and_email_its_invitations(app_cfn, domain_cfn):
    # ses_sender example.com + ses_from_address adsauth@mail.example.com; ses_sender an address.
    for cfn, sender in ((app_cfn, "adsauth@mail.example.com"), (domain_cfn, "ops@example.com")):
        env = functions_by_handler(cfn)["adsauth.handlers.worker.handler"]["Properties"]["Environment"]["Variables"]
        assert render(env["PUBLIC_BASE_URL"]).startswith("https://")
        assert env["SES_FROM_ADDRESS"] == sender  # an address, as SES needs for Source
        assert "SES_SENDER" not in env
