"""No secret value reaches the template or an environment variable."""

from __future__ import annotations

import json
import re

from adsauth.packs import LAYOUTS
from tests.infra.cfn import functions_by_handler, only, render, walk


def test_template_has_no_secret_string(cfn, domain_cfn, consumer_cfn):
    for template in (cfn, domain_cfn, consumer_cfn):
        assert not [key for key, _ in walk(template) if key in ("SecretString", "SecretBinary")]


def test_no_literal_client_secret_value(cfn):
    text = json.dumps(cfn)
    # "client_secret" appears only as the name of the generated key, never with a value.
    assert not re.search(r'client_secret\\?"\s*:\s*\\?"', text)
    _, secret = only(cfn, "AWS::SecretsManager::Secret")
    assert "client_secret" not in json.loads(
        secret["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
    )


# Which function gets which secret-like variable: names, ARNs and ARN patterns, never a value.
SECRET_LIKE_VARIABLES = {
    "adsauth.handlers.connect.handler": set(),
    "adsauth.handlers.callback.handler": {"SECRETS_KMS_KEY_ID", "REFRESH_SECRET_READERS"},
    "adsauth.handlers.dispatcher.handler": set(),
    "adsauth.handlers.worker.handler": {"SECRETS_KMS_KEY_ID", "REFRESH_SECRET_READERS"},
}
# Names that match the pattern but hold a plain setting, checked to be exactly that: the token
# layout ("packed" or "per_advertiser", adsauth.packs.LAYOUTS), never a reference or a value.
PLAIN_SETTINGS = {"TOKEN_LAYOUT": LAYOUTS}


def test_only_secret_like_variables_are_references(cfn, domain_cfn):
    for template in (cfn, domain_cfn):
        secret_id, _ = only(template, "AWS::SecretsManager::Secret")
        key_id, _ = only(template, "AWS::KMS::Key")
        for handler, fn in functions_by_handler(template).items():
            env = fn["Properties"]["Environment"]["Variables"]
            secretish = {k for k in env if re.search("SECRET|TOKEN|PASSWORD|KEY", k)} - set(PLAIN_SETTINGS)
            for name, values in PLAIN_SETTINGS.items():
                if name in env:
                    assert env[name] in values, (handler, name)
            assert secretish == {"LWA_CLIENT_SECRET_NAME", "SECRET_PREFIX"} | SECRET_LIKE_VARIABLES[handler]
            assert env["LWA_CLIENT_SECRET_NAME"] == {"Ref": secret_id}
            assert isinstance(env["SECRET_PREFIX"], str) and env["SECRET_PREFIX"].endswith("/")
            if "SECRETS_KMS_KEY_ID" in env:
                assert env["SECRETS_KMS_KEY_ID"] == {"Fn::GetAtt": [key_id, "Arn"]}
            if "REFRESH_SECRET_READERS" in env:
                for pattern in render(env["REFRESH_SECRET_READERS"]).split(","):
                    assert pattern.startswith("arn:"), pattern
