"""The public API: its routes, who serves them, the stage, the functions and the URLs."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.cfn import api_routes, functions_by_handler, only, render, resources, role_of

CONNECT = "adsauth.handlers.connect.handler"
CALLBACK = "adsauth.handlers.callback.handler"
DISPATCHER = "adsauth.handlers.dispatcher.handler"
WORKER = "adsauth.handlers.worker.handler"
# What an access log line may hold: who, when, which route template, what status. Nothing that
# carries a request's path, query string or body.
SAFE_ACCESS_LOG_VARIABLES = {
    "$context.identity.sourceIp",
    "$context.identity.caller",
    "$context.identity.user",
    "$context.requestTime",
    "$context.httpMethod",
    "$context.resourcePath",
    "$context.status",
    "$context.protocol",
    "$context.responseLength",
    "$context.requestId",
}
ROUTES = {
    ("GET", "/connect/{invitation}"): CONNECT,
    ("GET", "/result/{outcome}"): CONNECT,
    ("GET", "/callback"): CALLBACK,
    ("POST", "/token"): CALLBACK,
}


def _function_id(cfn, handler):
    return next(
        logical_id
        for logical_id, fn in resources(cfn, "AWS::Lambda::Function").items()
        if fn["Properties"]["Handler"] == handler
    )


def test_exactly_the_four_routes_each_served_by_its_function(cfn):
    routes = api_routes(cfn)
    assert set(routes) == set(ROUTES)
    for route, handler in ROUTES.items():
        integration = routes[route]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert "${" + _function_id(cfn, handler) + ".Arn}" in render(integration["Uri"]), route


def test_only_post_token_requires_iam(cfn):
    auth = {route: props["AuthorizationType"] for route, props in api_routes(cfn).items()}
    assert auth == {
        ("GET", "/connect/{invitation}"): "NONE",
        ("GET", "/result/{outcome}"): "NONE",
        ("GET", "/callback"): "NONE",
        ("POST", "/token"): "AWS_IAM",
    }


@pytest.mark.parametrize("variant, throttle", [("cfn", (50, 100)), ("domain_cfn", (20, 40))])
def test_api_is_regional_with_a_throttled_logged_stage(variant, throttle, request):
    cfn = request.getfixturevalue(variant)
    _, api = only(cfn, "AWS::ApiGateway::RestApi")
    assert api["Properties"]["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    _, stage = only(cfn, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    assert props.get("TracingEnabled") is not True  # a stage segment records the query string
    (settings,) = props["MethodSettings"]
    assert (settings["HttpMethod"], settings["ResourcePath"]) == ("*", "/*")  # the whole stage
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == throttle
    assert settings["DataTraceEnabled"] is False  # would log query strings: the LwA code
    assert settings["LoggingLevel"] == "ERROR"  # INFO logs request parameters
    assert settings["MetricsEnabled"] is True


@pytest.mark.parametrize("variant", ["cfn", "domain_cfn"])
def test_access_log_never_holds_a_path_query_string_or_body(variant, request):
    cfn = request.getfixturevalue(variant)
    _, stage = only(cfn, "AWS::ApiGateway::Stage")
    setting = stage["Properties"]["AccessLogSetting"]
    (log_group_id,) = re.findall(r":log-group:\$\{(\w+)\}$", render(setting["DestinationArn"]))
    log_group = cfn["Resources"][log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert log_group["DeletionPolicy"] == "RetainExceptOnCreate"
    fields = json.loads(setting["Format"])
    variables = set(re.findall(r"\$context\.[A-Za-z.]+", setting["Format"]))
    # resourcePath is the route template (/connect/{invitation}), never the token itself.
    assert fields["resourcePath"] == "$context.resourcePath"
    assert variables <= SAFE_ACCESS_LOG_VARIABLES, variables - SAFE_ACCESS_LOG_VARIABLES
    for unsafe in ("$context.path", "$context.requestOverride", "$input", "$request", "$method"):
        assert unsafe not in setting["Format"]
    assert "querystring" not in setting["Format"].lower()


@pytest.mark.parametrize("variant", ["cfn", "domain_cfn"])
def test_functions_runtime_limits_and_layer(variant, request):
    cfn = request.getfixturevalue(variant)
    _, parameter = next(
        (k, p) for k, p in cfn["Parameters"].items() if "powertools" in p.get("Default", "")
    )
    # The layer is built per Python version: its parameter names the functions' runtime.
    assert parameter["Default"] == "/aws/service/powertools/python/arm64/python3.14/3.37.0"
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    functions = functions_by_handler(cfn)
    assert set(functions) == {CONNECT, CALLBACK, DISPATCHER, WORKER}
    for handler, fn in functions.items():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.14"
        assert props["Architectures"] == ["arm64"]
        if handler in (CONNECT, CALLBACK):
            assert props["Timeout"] < 29  # API Gateway's integration limit
        assert props["MemorySize"] == 512
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert [render(layer) for layer in props["Layers"]] == [
            "${" + next(k for k, p in cfn["Parameters"].items() if p is parameter) + "}"
        ]
        log_group = cfn["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["RetentionInDays"] == 30
        assert log_group["DeletionPolicy"] == "RetainExceptOnCreate"
        # Only the role's policy in DependsOn: the role itself is a GetAtt (cfn-lint W3005).
        (policy_id,) = fn["DependsOn"]
        policy = cfn["Resources"][policy_id]
        assert policy["Type"] == "AWS::IAM::Policy"
        assert policy["Properties"]["Roles"] == [{"Ref": role_of(fn)}]


def test_reserved_concurrency_protects_lwa_where_configured(cfn, domain_cfn):
    reserved = {
        handler: fn["Properties"].get("ReservedConcurrentExecutions")
        for handler, fn in functions_by_handler(cfn).items()
    }
    # No reservation by default (a new account's quota of 10 allows none); the worker is bounded
    # by its event source's maximum concurrency, the dispatcher's runs by the dispatch lease.
    assert reserved == {CONNECT: None, CALLBACK: None, DISPATCHER: None, WORKER: None}
    reserved = {
        handler: fn["Properties"].get("ReservedConcurrentExecutions")
        for handler, fn in functions_by_handler(domain_cfn).items()
    }
    # callback_reserved_concurrency 10: the callback (the code exchanges), nothing else.
    assert reserved == {CONNECT: None, CALLBACK: 10, DISPATCHER: None, WORKER: None}


def test_waf_only_when_enabled(cfn, domain_cfn):
    assert not resources(cfn, "AWS::WAFv2::WebACL")
    assert not resources(cfn, "AWS::WAFv2::WebACLAssociation")
    acl_id, acl = only(domain_cfn, "AWS::WAFv2::WebACL")
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL"
    assert props["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in props["Rules"]}
    assert set(rules) == {"AWSManagedRulesCommonRuleSet", "RateLimitPerIp"}
    managed = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert (managed["VendorName"], managed["Name"]) == ("AWS", "AWSManagedRulesCommonRuleSet")
    assert rules["AWSManagedRulesCommonRuleSet"]["OverrideAction"] == {"None": {}}
    rate = rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"]
    assert (rate["AggregateKeyType"], rate["Limit"]) == ("IP", 1000)
    assert rules["RateLimitPerIp"]["Action"] == {"Block": {}}
    # Sampled requests would keep request lines (invitation tokens, codes, states) for hours.
    for visibility in [props["VisibilityConfig"], *(r["VisibilityConfig"] for r in props["Rules"])]:
        assert visibility["SampledRequestsEnabled"] is False
        assert visibility["CloudWatchMetricsEnabled"] is True
    assert not resources(domain_cfn, "AWS::WAFv2::LoggingConfiguration")
    _, association = only(domain_cfn, "AWS::WAFv2::WebACLAssociation")
    stage_id, _ = only(domain_cfn, "AWS::ApiGateway::Stage")
    assert render(association["Properties"]["WebACLArn"]) == "${" + acl_id + ".Arn}"
    assert "${" + stage_id + "}" in render(association["Properties"]["ResourceArn"])


def test_environment_matches_settings(cfn):
    api_id, _ = only(cfn, "AWS::ApiGateway::RestApi")
    table_id, _ = only(cfn, "AWS::DynamoDB::Table")
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    for fn in functions_by_handler(cfn).values():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["TABLE_NAME"] == {"Ref": table_id}
        assert env["LWA_CLIENT_SECRET_NAME"] == {"Ref": secret_id}
        assert env["SECRET_PREFIX"] == "adsauth/AdsAuth/advertisers/"
        assert env["LWA_SCOPE"] == "advertising::campaign_management"
        assert env["ALLOWED_REGIONS"] == "NA,EU"
        assert env["INVITATION_TTL_SECONDS"] == str(7 * 86400)
        assert env["POWERTOOLS_SERVICE_NAME"] == env["POWERTOOLS_METRICS_NAMESPACE"] == "adsauth"
        assert env["OPERATOR_NAME"] == "Northwind Media"  # tests/infra/conftest.py OPERATOR_NAME
        assert "SES_FROM_ADDRESS" not in env and "SES_SENDER" not in env
        # Built from the API id, not the stage: no Stage/Deployment reference, so no cycle.
        assert render(env["PUBLIC_BASE_URL"]) == (
            "https://${" + api_id + "}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod"
        )


def test_settings_parse_the_environment(cfn):
    from adsauth.settings import settings_from_env

    for fn in functions_by_handler(cfn).values():
        env = {k: render(v) for k, v in fn["Properties"]["Environment"]["Variables"].items()}
        settings = settings_from_env(env)
        assert [r.value for r in settings.allowed_regions] == ["NA", "EU"]
        assert settings.invitation_ttl_seconds == 7 * 86400


def test_outputs_tell_ops_what_to_register(cfn):
    outputs = {name: render(o["Value"]) for name, o in cfn["Outputs"].items()}
    base = outputs["InvitationBaseUrl"]
    assert outputs["CallbackUrl"].endswith("/callback")
    assert outputs["CallbackUrl"] == base + "/callback"
    env = functions_by_handler(cfn)[CALLBACK]["Properties"]["Environment"]["Variables"]
    assert base == render(env["PUBLIC_BASE_URL"])  # redirect_uri is identical everywhere
    assert outputs["ClientSecretName"] == "adsauth/AdsAuth/lwa_client"
    assert outputs["SecretPrefix"] == "adsauth/AdsAuth/advertisers/"
    assert outputs["TableName"].startswith("${")
    assert outputs["AllowedRegions"] == "NA,EU"


def test_custom_domain_serves_the_stage_at_the_root(domain_cfn):
    _, domain = only(domain_cfn, "AWS::ApiGateway::DomainName")
    assert domain["Properties"]["DomainName"] == "auth.example.com"
    assert domain["Properties"]["RegionalCertificateArn"].startswith("arn:aws:acm:")
    assert domain["Properties"]["SecurityPolicy"] == "TLS_1_2"
    _, mapping = only(domain_cfn, "AWS::ApiGateway::BasePathMapping")
    assert "BasePath" not in mapping["Properties"]
    assert mapping["Properties"]["Stage"] == {
        "Ref": only(domain_cfn, "AWS::ApiGateway::Stage")[0]
    }

    outputs = {name: render(o["Value"]) for name, o in domain_cfn["Outputs"].items()}
    assert outputs["CallbackUrl"] == "https://auth.example.com/callback"
    assert "CustomDomainTarget" in outputs
    assert outputs["SesFromAddress"] == "ops@example.com"
    assert "SesSender" not in outputs
    for fn in functions_by_handler(domain_cfn).values():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["PUBLIC_BASE_URL"] == "https://auth.example.com"
        assert env["SES_FROM_ADDRESS"] == "ops@example.com"
        assert "SES_SENDER" not in env
        assert env["OPERATOR_NAME"] == "Acme Media"
