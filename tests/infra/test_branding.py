"""Branding in the template: the operator's name, support contact and footer reach every function
that renders a page or sends an e-mail, as variables, and ops (the CLI) as outputs; the optional
ones only when set (CloudFormation refuses an empty output value)."""

from __future__ import annotations

import pytest

from tests.infra.cfn import functions_by_handler, render
from tests.infra.conftest import FOOTER_TEXT, OPERATOR_NAME, SUPPORT_CONTACT

# the functions that render pages (connect, callback) or send e-mail (the refresh worker)
RENDERERS = ("adsauth.handlers.connect.handler", "adsauth.handlers.callback.handler",
             "adsauth.handlers.worker.handler")


def _outputs(cfn: dict) -> dict[str, str]:
    return {name: render(o["Value"]) for name, o in cfn["Outputs"].items()}


def test_the_default_stack_names_its_operator_and_sets_no_optional_branding(cfn):
    functions = functions_by_handler(cfn)
    for handler in RENDERERS:
        env = functions[handler]["Properties"]["Environment"]["Variables"]
        assert env["OPERATOR_NAME"] == OPERATOR_NAME, handler
        assert "SUPPORT_CONTACT" not in env and "FOOTER_TEXT" not in env, handler
    outputs = _outputs(cfn)
    assert outputs["OperatorName"] == OPERATOR_NAME  # always: the CLI's e-mails need it
    assert "SupportContact" not in outputs and "FooterText" not in outputs


def test_a_stack_with_branding_passes_it_to_the_functions_and_the_cli(domain_cfn):
    functions = functions_by_handler(domain_cfn)
    for handler in RENDERERS:
        env = functions[handler]["Properties"]["Environment"]["Variables"]
        assert (env["OPERATOR_NAME"], env["SUPPORT_CONTACT"], env["FOOTER_TEXT"]) == (
            "Acme Media", SUPPORT_CONTACT, FOOTER_TEXT), handler
    outputs = _outputs(domain_cfn)
    assert (outputs["OperatorName"], outputs["SupportContact"], outputs["FooterText"]) == (
        "Acme Media", SUPPORT_CONTACT, FOOTER_TEXT)


def test_the_app_path_carries_the_name_ops_put_in_place_of_the_placeholder(app_cfn):
    outputs = _outputs(app_cfn)
    assert outputs["OperatorName"] == OPERATOR_NAME
    assert outputs["SupportContact"] == "https://northwind.example/support"
    env = functions_by_handler(app_cfn)["adsauth.handlers.connect.handler"]["Properties"]["Environment"]["Variables"]
    assert env["SUPPORT_CONTACT"] == "https://northwind.example/support"


@pytest.mark.parametrize("which", ["cfn", "domain_cfn"])
def test_the_functions_parse_their_branding(which, request):
    from adsauth.settings import settings_from_env

    for handler in RENDERERS:
        variables = functions_by_handler(request.getfixturevalue(which))[handler]["Properties"]["Environment"]["Variables"]
        branding = settings_from_env({k: render(v) for k, v in variables.items()}).branding
        assert branding.operator_name in (OPERATOR_NAME, "Acme Media")
