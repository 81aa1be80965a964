"""What a token reader may do, in one place: the statements ``AdsAuthStack.grant_read_tokens``
(functions in the adsauth app) and ``AdsAuthTokens.grant_read_tokens`` (functions in any other
app) both attach.

Exactly three statements: ``secretsmanager:GetSecretValue`` and ``DescribeSecret`` on
``<secret prefix>access/*`` (an advertiser's own ``access/<id>`` and the packs' ``access/packs/<id>``);
``kms:Decrypt`` on the secrets key, only through Secrets Manager and only for those secrets
(``kms:EncryptionContext:SecretARN``, which Secrets Manager sets on every call); ``dynamodb:GetItem``
and ``dynamodb:Query`` on the table and its profile index. Never a refresh token (``refresh/*``),
never the LwA client secret, no write, no scan.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

TOKEN_READ_SECRET_ACTIONS = ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")
TOKEN_READ_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query")
KMS_READ_ACTIONS = ("kms:Decrypt",)
SECRET_ARN_CONTEXT = "kms:EncryptionContext:SecretARN"
WILDCARD_REASON = (
    "One access-token secret per advertiser (or per pack), created at runtime, so names are not "
    "known at deploy time; the pattern is limited to this stack's advertiser prefix."
)


def secret_arn_pattern(scope: IConstruct, name: str) -> str:
    """``arn:…:secret:<name>`` (``name`` may end in ``*``), in ``scope``'s stack's partition,
    region and account."""
    return Stack.of(scope).format_arn(
        service="secretsmanager", resource="secret", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def access_secrets_arn(scope: IConstruct, secret_prefix: str) -> str:
    """``arn:…:secret:<prefix>access/*``: every access-token secret, an advertiser's or a pack's."""
    return secret_arn_pattern(scope, f"{secret_prefix}access/*")


def token_read_statements(
    scope: IConstruct, *, table_arn: str, profile_index: str, secret_prefix: str, secrets_key_arn: str
) -> list[iam.PolicyStatement]:
    """The three statements of a token reader (see the module docstring), for ``scope``'s stack."""
    access = access_secrets_arn(scope, secret_prefix)
    return [
        iam.PolicyStatement(actions=list(TOKEN_READ_SECRET_ACTIONS), resources=[access]),
        iam.PolicyStatement(
            actions=list(KMS_READ_ACTIONS),
            resources=[secrets_key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com"},
                "StringLike": {SECRET_ARN_CONTEXT: [access]},
            },
        ),
        iam.PolicyStatement(
            actions=list(TOKEN_READ_TABLE_ACTIONS),
            resources=[table_arn, f"{table_arn}/index/{profile_index}"],
        ),
    ]


def grant_token_reads(
    grantee: iam.IGrantable, *, table_arn: str, profile_index: str, secret_prefix: str, secrets_key_arn: str
) -> iam.Grant:
    """Attach ``token_read_statements`` to ``grantee``'s identity policy, and acknowledge the one
    wildcard (``access/*``) to cdk-nag when it is installed."""
    principal = grantee.grant_principal
    scope = next((c for c in (principal, grantee) if isinstance(c, Construct)), None)
    if scope is None:  # the ARNs are formatted in the grantee's stack
        raise TypeError("grant_read_tokens needs a grantee defined in a stack (a function or a role)")
    statements = token_read_statements(
        scope, table_arn=table_arn, profile_index=profile_index, secret_prefix=secret_prefix,
        secrets_key_arn=secrets_key_arn,
    )
    grant: iam.Grant | None = None
    for statement in statements:
        added = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=statement.actions,
            resource_arns=statement.resources,
            conditions=statement.conditions or None,
        )
        grant = added if grant is None else grant.combine(added)
    assert grant is not None
    _acknowledge_wildcard(principal, access_secrets_arn(scope, secret_prefix))
    return grant


def _acknowledge_wildcard(principal: iam.IPrincipal, arn: str) -> None:
    try:
        from cdk_nag import NagSuppressions
    except ImportError:  # cdk-nag is optional: no checks, nothing to acknowledge
        return
    # The finding sits on the principal's default policy (the function role's), nowhere else.
    if isinstance(principal, iam.Role):
        stack = Stack.of(principal)
        NagSuppressions.add_resource_suppressions_by_path(
            stack,
            f"{principal.node.path}/DefaultPolicy/Resource",
            [{"id": "AwsSolutions-IAM5", "reason": WILDCARD_REASON, "appliesTo": [nag_resource(stack, arn)]}],
        )


def nag_resource(stack: Stack, value: str) -> str:
    """``Resource::<value>`` as cdk-nag writes it: intrinsics flattened (``{"Ref": X}`` → ``<X>``,
    ``Fn::GetAtt`` → ``<X.Attr>``), so the acknowledgement names this wildcard and no other."""
    return "Resource::" + _flatten(stack.resolve(value))


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref":
            return f"<{arg}>"
        if name == "Fn::GetAtt":
            return f"<{'.'.join(arg) if isinstance(arg, list) else arg}>"
        if name == "Fn::Join":
            separator, parts = arg
            return separator.join(_flatten(part) for part in parts)
    raise TypeError("cannot name this resource for cdk-nag")
