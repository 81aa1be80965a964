"""A CDK app that is not this one, granted through ``adsauth.cdk`` (issue 12, item 3).

``CONSUMER_APP`` is what a downstream team writes in its own repository: a fresh ``App``, its own
stack and function, ``pip install 'adsauth[cdk]'`` and nothing of this checkout but the package.
It runs in a subprocess whose ``sys.path`` holds the package and not the repository, so an import
of ``infra`` or ``local`` would fail it, and it synthesizes for real (local bundling, cdk-nag on).

Then, as deployed: its SSM parameters resolved to what the AdsAuth template publishes (both
templates in one fake account and region, tests/iam/template.py), the offline IAM simulator
(tests/iam) allows the token reads and denies everything else (tests/iam/consumer.py), and its
grant is, statement for statement, what ``AdsAuthStack.grant_read_tokens`` gives a function in
this app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from adsauth.cdk import AdsAuthTokens, InvalidStackName, parameter_names
from adsauth.cdk.bundling import CLIENT_MODULE, INSTALLED_ROOT, LAYER_MODULE, modules_for
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match
from aws_cdk.assertions import Template as AssertTemplate

from infra.config import load_config
from infra.stack import AdsAuthStack
from tests.iam import consumer as rows
from tests.iam.simulate import World, simulate
from tests.iam.template import Template
from tests.infra.cfn import only, resources, walk
from tests.infra.conftest import CLIENT_ID, DEFAULT_CONFIG, _cdk_json_flags

pytestmark = pytest.mark.slow

STACK = "ReportingApp"
CONSUMER_APP = '''
import json, sys
from pathlib import Path

from aws_cdk import App, Aspects, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import AwsSolutionsChecks

from adsauth.cdk import AdsAuthTokens

app = App(outdir=sys.argv[1])
stack = Stack(app, "ReportingApp")
log_group = logs.LogGroup(stack, "ConsumerLogs", retention=logs.RetentionDays.ONE_MONTH)
role = iam.Role(stack, "ConsumerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
log_group.grant_write(role)
fn = lambda_.Function(
    stack, "Consumer", runtime=lambda_.Runtime.PYTHON_3_14, handler="index.handler",
    code=lambda_.Code.from_inline("from adsauth.client import get_access_token\\n"),
    role=role, log_group=log_group, timeout=Duration.seconds(30),
)
tokens = AdsAuthTokens.from_stack(stack, "AdsAuthTokens", stack_name="AdsAuth")
tokens.grant_read_tokens(fn)
Aspects.of(app).add(AwsSolutionsChecks())
assembly = app.synth()
artifact = assembly.get_stack_artifact(stack.artifact_id)
print(json.dumps({
    "template": artifact.template,
    "messages": [f"{m.level}: {m.entry.data}" for m in artifact.messages],
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("infra", "local", "tests", "app")),
    "adsauth": __import__("adsauth").__file__,
}))
'''


@pytest.fixture(scope="module")
def consumer_app(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("consumer-app")
    (work / "app.py").write_text(CONSUMER_APP)
    script = textwrap.dedent(f"""
        import runpy, sys
        from pathlib import Path
        # Only the package as installed: no checkout root (infra/, local/, tests/) on the path.
        sys.path = [p for p in sys.path if not (p and (Path(p) / "infra").is_dir())] + [{str(INSTALLED_ROOT)!r}]
        sys.argv = ["app.py", {str(work / "cdk.out")!r}]
        runpy.run_path("app.py", run_name="__main__")
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CDK_CONTEXT_JSON", "CDK_OUTDIR")}
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    done = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["outdir"] = work / "cdk.out"
    return found


@pytest.fixture(scope="module")
def in_app() -> tuple[dict, dict]:
    """The AdsAuth stack and, in the same app, a function granted by ``AdsAuthStack.grant_read_tokens``
    (shaped like the consumer app's), as ``cdk synth`` builds them (cdk.json's flags)."""
    app = App(context={**_cdk_json_flags(), "aws:cdk:bundling-stacks": [], "adsauth": DEFAULT_CONFIG})
    adsauth = AdsAuthStack(app, "AdsAuth", config=load_config(DEFAULT_CONFIG))
    stack = Stack(app, "InApp")
    fn = _function(stack)
    adsauth.grant_read_tokens(fn)
    from aws_cdk.assertions import Template as T

    return T.from_stack(adsauth).to_json(), T.from_stack(stack).to_json()


def _function(stack: Stack) -> lambda_.Function:
    log_group = logs.LogGroup(stack, "ConsumerLogs", retention=logs.RetentionDays.ONE_MONTH)
    role = iam.Role(stack, "ConsumerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    log_group.grant_write(role)
    return lambda_.Function(stack, "Consumer", runtime=lambda_.Runtime.PYTHON_3_14, handler="index.handler",
                            code=lambda_.Code.from_inline("x = 1\n"), role=role, log_group=log_group)


@pytest.fixture(scope="module")
def producer(in_app) -> Template:
    return Template(in_app[0], "AdsAuth")


@pytest.fixture(scope="module")
def consumer(consumer_app, producer) -> Template:
    return Template(consumer_app["template"], STACK, imports=producer.exports())


def _grant(template: Template) -> list[tuple]:
    """The function role's statements as deployed, but for its own log group, comparable."""
    (fn,) = template.functions().values()
    found = []
    for document in fn.identity_policies:
        for s in document["Statement"]:
            actions = sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
            if actions == ["logs:CreateLogStream", "logs:PutLogEvents"]:
                continue
            resources_ = sorted(s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
            found.append((s["Effect"], actions, resources_, json.dumps(s.get("Condition"), sort_keys=True)))
    return sorted(found)


# --- the app: only the package, a real synth ----------------------------------------------------------
def test_the_consumer_app_needs_the_package_and_nothing_of_this_checkout(consumer_app):
    assert consumer_app["modules"] == []
    assert Path(consumer_app["adsauth"]).resolve() == INSTALLED_ROOT / "adsauth" / "__init__.py"


def test_cdk_nag_finds_nothing_unacknowledged_in_the_consumer_app(consumer_app):
    findings = [m for m in consumer_app["messages"] if "AwsSolutions-" in m]
    assert findings == []
    (policy_id, policy) = only(consumer_app["template"], "AWS::IAM::Policy")
    (rule,) = [r for r in policy["Metadata"]["cdk_nag"]["rules_to_suppress"] if r["id"] == "AwsSolutions-IAM5"]
    (applies_to,) = rule["applies_to"]
    assert applies_to.startswith("Resource::arn:<AWS::Partition>:secretsmanager:") and applies_to.endswith(">access/*")


def test_the_client_layer_holds_the_client_and_its_closure_and_nothing_else(consumer_app):
    template = AssertTemplate.from_json(consumer_app["template"])
    template.has_resource_properties("AWS::Lambda::Function", {
        "Layers": [{"Ref": Match.string_like_regexp("AdsAuthTokensClientLayer")}],
    })
    (_, layer) = only(consumer_app["template"], "AWS::Lambda::LayerVersion")
    asset = consumer_app["outdir"] / f"asset.{layer['Properties']['Content']['S3Key'].split('.')[0]}"
    files = {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}
    closure = modules_for(LAYER_MODULE, INSTALLED_ROOT)
    # the client's closure plus the python-amazon-ad-api shim, which adds no module of its own
    assert set(closure) == {*modules_for(CLIENT_MODULE, INSTALLED_ROOT), "adsauth/ad_api.py"}
    assert files == {f"python/{f}" for f in closure}
    assert {"python/adsauth/client.py", "python/adsauth/ad_api.py"} <= files
    assert not [f for f in files if "/handlers/" in f or "/cdk/" in f or "boto3" in f or "botocore" in f]
    assert not [f for f in files if f.endswith(("/cli.py", "/wiring.py", "/__main__.py"))]
    for name in closure:  # the installed files, as they are
        assert (asset / "python" / name).read_bytes() == (INSTALLED_ROOT / name).read_bytes(), name
    # what importing the client actually loads is in it (the closure also covers lazy imports)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, adsauth.client, adsauth.ad_api; print(' '.join(m.__file__ for n, m in sys.modules.items()"
         " if n.split('.')[0] == 'adsauth'))"],
        capture_output=True, text=True, check=True, cwd=INSTALLED_ROOT,
    ).stdout.split()
    assert {Path(f).resolve().relative_to(INSTALLED_ROOT).as_posix() for f in loaded} <= set(closure)


def test_the_function_gets_the_client_variables_as_published(consumer, producer, in_app):
    (fn,) = consumer.functions().values()
    assert fn.environment == {
        "ADSAUTH_TABLE_NAME": producer.ref(only(in_app[0], "AWS::DynamoDB::Table")[0]),
        "ADSAUTH_SECRET_PREFIX": "adsauth/AdsAuth/advertisers/",
        "ADSAUTH_LWA_CLIENT_ID": CLIENT_ID,
    }


def test_the_consumer_reads_the_coordinates_at_deploy_time_and_checks_their_version(consumer_app, producer):
    cfn = consumer_app["template"]
    read = {p["Default"]: p["Type"] for p in cfn["Parameters"].values() if p["Default"].startswith("/adsauth/")}
    assert set(read) <= set(producer.exports())
    assert set(read.values()) == {"AWS::SSM::Parameter::Value<String>"}
    assert parameter_names("AdsAuth")["coordinates_version"] in read
    assert not [v for k, v in walk(cfn) if k == "Fn::ImportValue"]
    (assertion,) = [a for rule in cfn["Rules"].values() for a in rule["Assertions"]
                    if "coordinates" in a["AssertDescription"]]
    versions, ref = assertion["Assert"]["Fn::Contains"]
    assert versions == ["1"]
    assert cfn["Parameters"][ref["Ref"]]["Default"] == "/adsauth/AdsAuth/coordinates-version"


def test_the_adsauth_stack_publishes_its_coordinates_and_no_secret(producer, in_app):
    published = {name: value for name, value in producer.exports().items() if name.startswith("/")}
    cfn = in_app[0]
    table = only(cfn, "AWS::DynamoDB::Table")[0]
    assert published == {
        "/adsauth/AdsAuth/table-name": producer.ref(table),
        "/adsauth/AdsAuth/table-arn": producer.get_att(table, "Arn"),
        "/adsauth/AdsAuth/profile-index": "byProfile",
        "/adsauth/AdsAuth/secret-prefix": "adsauth/AdsAuth/advertisers/",
        "/adsauth/AdsAuth/secrets-key-arn": producer.get_att(only(cfn, "AWS::KMS::Key")[0], "Arn"),
        "/adsauth/AdsAuth/lwa-client-id": CLIENT_ID,
        "/adsauth/AdsAuth/token-layout": DEFAULT_CONFIG["token_layout"],
        "/adsauth/AdsAuth/coordinates-version": "1",
    }
    for parameter in resources(cfn, "AWS::SSM::Parameter").values():
        assert parameter["Properties"]["Tier"] == "Standard" and parameter["Properties"]["Type"] == "String"


# --- as deployed: the simulator ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(producer, consumer) -> World:
    return World(producer, consumer)


def test_the_consumer_role_may_read_access_tokens(world):
    needed = rows.allowed_requests(world)
    assert any(r.action == "kms:Decrypt" for r in needed)  # the reads' Decrypt, via Secrets Manager
    verdicts = simulate({r: world for r in needed})
    assert [r.label for r in needed if verdicts[r] != "Allowed"] == []


def test_the_consumer_role_may_do_nothing_else(world):
    denied = rows.denied_requests(world)
    verdicts = simulate({r: world for r in denied})
    assert [f"{why}: {r.label} ({verdicts[r]})" for r, why in denied.items() if not verdicts[r].endswith("Denied")] == []


def test_the_grant_is_the_one_this_app_gives(consumer, producer, in_app):
    same_app = Template(in_app[1], "InApp", imports=producer.exports())
    assert _grant(consumer) == _grant(same_app)
    assert len(_grant(consumer)) == 3


# --- in process: bad input, other grantees --------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "1AdsAuth", "Ads/Auth", "Ads Auth", "A" * 129, None])
def test_a_bad_stack_name_is_refused_and_adds_nothing(name):
    stack = Stack(App(context={"aws:cdk:bundling-stacks": []}), "Other")
    with pytest.raises(InvalidStackName, match="stack_name must be the name of a deployed adsauth stack"):
        AdsAuthTokens.from_stack(stack, "Tokens", stack_name=name)
    assert stack.node.children == []


def test_a_role_gets_the_statements_and_no_layer():
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Other")
    role = iam.Role(stack, "Reader", assumed_by=iam.AccountRootPrincipal())
    AdsAuthTokens.from_stack(stack, "Tokens", stack_name="AdsAuth-Blue").grant_read_tokens(role)
    cfn = AssertTemplate.from_stack(stack).to_json()
    assert not resources(cfn, "AWS::Lambda::LayerVersion")
    (_, policy) = only(cfn, "AWS::IAM::Policy")
    assert len(policy["Properties"]["PolicyDocument"]["Statement"]) == 3
    assert {p["Default"] for p in cfn["Parameters"].values() if p["Default"].startswith("/adsauth/")} == {
        f"/adsauth/AdsAuth-Blue/{key}"
        for key in ("table-name", "table-arn", "profile-index", "secret-prefix", "secrets-key-arn",
                    "lwa-client-id", "coordinates-version")
    }
