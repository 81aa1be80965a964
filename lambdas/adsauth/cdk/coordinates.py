"""Where an adsauth stack publishes what its consumers need, and how they read it back.

The stack writes one SSM String parameter (standard tier) per coordinate under
``/adsauth/<stack name>/``; ``AdsAuthTokens.from_stack`` in any other CDK app of the same account
and region reads them at deploy time (CloudFormation parameters of type
``AWS::SSM::Parameter::Value<String>``), so synth needs no credentials and no lookup, and no
CloudFormation export ties the two stacks together. None of them is a secret: names, ARNs, the
LwA client id (public by design) and settings.

``coordinates-version`` says which layout of names this is; a reader checks it at deploy time (a
template rule, like CDK's own bootstrap-version check) and refuses a layout it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from aws_cdk import CfnRule, CfnRuleAssertion, Fn, Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

COORDINATES_VERSION = "1"
# What this package reads: a stack publishing another layout fails the consumer's deploy.
READABLE_VERSIONS = ("1",)
VERSION_KEY = "coordinates-version"
# CloudFormation stack names: a letter, then letters, digits and hyphens (128 at most).
_STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")


class InvalidStackName(ValueError):
    def __init__(self) -> None:
        super().__init__(
            "stack_name must be the name of a deployed adsauth stack: a letter, then letters, "
            "digits and hyphens (at most 128)"
        )


@dataclass(frozen=True)
class TokenCoordinates:
    """What a token reader needs from an adsauth stack (values or CDK tokens)."""

    table_name: str
    table_arn: str
    profile_index: str  # the GSI that finds an advertiser by profile id
    secret_prefix: str  # access tokens are <prefix>access/<id> and <prefix>access/packs/<pack>
    secrets_key_arn: str  # the KMS key of every adsauth secret
    client_id: str  # the LwA client id (not a secret): the Ads API's ClientId header
    # per_advertiser | packed: published for tools and people; a reader leaves it None, since the
    # client finds each advertiser's token from its item (and an unused parameter is a warning).
    token_layout: str | None = None


# One parameter per field, by this key; the names are part of the published interface.
KEYS = {
    "table_name": "table-name",
    "table_arn": "table-arn",
    "profile_index": "profile-index",
    "secret_prefix": "secret-prefix",
    "secrets_key_arn": "secrets-key-arn",
    "client_id": "lwa-client-id",
    "token_layout": "token-layout",
}
DESCRIPTIONS = {
    "table_name": "DynamoDB table of advertisers and profiles (never a token)",
    "table_arn": "ARN of that table",
    "profile_index": "Index of that table that finds an advertiser by profile id",
    "secret_prefix": "Prefix of the token secrets; downstream reads <prefix>access/* only",
    "secrets_key_arn": "KMS key of the adsauth secrets (Decrypt only via Secrets Manager)",
    "client_id": "LwA client id (not a secret)",
    "token_layout": "Where advertisers' tokens live (per_advertiser or packed)",
}


def check_stack_name(stack_name: object) -> str:
    if not isinstance(stack_name, str) or not _STACK_NAME.fullmatch(stack_name):
        raise InvalidStackName()
    return stack_name


def parameter_name(stack_name: str, key: str) -> str:
    """``/adsauth/<stack name>/<key>``, e.g. ``/adsauth/AdsAuth/table-name``."""
    return f"/adsauth/{check_stack_name(stack_name)}/{key}"


def parameter_names(stack_name: str) -> dict[str, str]:
    """Every published parameter's name, by coordinate (and ``coordinates_version``)."""
    names = {field: parameter_name(stack_name, key) for field, key in KEYS.items()}
    names["coordinates_version"] = parameter_name(stack_name, VERSION_KEY)
    return names


def publish_coordinates(
    scope: Construct, construct_id: str, coordinates: TokenCoordinates
) -> Construct:
    """The writer: one String parameter per coordinate, under the name of ``scope``'s stack."""
    group = Construct(scope, construct_id)
    stack_name = Stack.of(scope).stack_name
    values = {f.name: getattr(coordinates, f.name) for f in fields(TokenCoordinates)}
    values["coordinates_version"] = COORDINATES_VERSION
    missing = sorted(name for name, value in values.items() if value is None)
    if missing:
        raise ValueError(f"coordinates to publish lack {', '.join(missing)}")
    descriptions = {**DESCRIPTIONS, "coordinates_version": "Layout of these parameters"}
    for field, name in parameter_names(stack_name).items():
        ssm.StringParameter(
            group,
            field,
            parameter_name=name,
            string_value=values[field],
            description=f"adsauth {stack_name}: {descriptions[field]}",
            tier=ssm.ParameterTier.STANDARD,
        )
    return group


def read_coordinates(scope: Construct, stack_name: str) -> TokenCoordinates:
    """The reader: the coordinates as deploy-time references (nothing is looked up at synth),
    and a template rule that fails the deploy if the stack publishes a layout not readable here."""
    names = parameter_names(stack_name)
    names.pop("token_layout")
    value = {field: ssm.StringParameter.value_for_string_parameter(scope, name) for field, name in names.items()}
    stack = Stack.of(scope)
    rule_id = f"AdsAuthCoordinatesVersion{stack_name.replace('-', '')}"
    if stack.node.try_find_child(rule_id) is None:
        CfnRule(
            stack,
            rule_id,
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_contains(list(READABLE_VERSIONS), value["coordinates_version"]),
                    assert_description=(
                        f"The adsauth stack {stack_name} publishes coordinates of a layout this "
                        "adsauth[cdk] cannot read: install the adsauth version the stack runs."
                    ),
                )
            ],
        )
    return TokenCoordinates(**{f.name: value[f.name] for f in fields(TokenCoordinates) if f.name in value})
