"""Where adsauth keeps state: the DynamoDB table, the Secrets Manager names and their KMS key.

The table's keys and indexes come from ``adsauth.schema``, the same module the local stack uses to
create its table, so the two cannot drift. The table never holds a token.

Secrets:

- the LwA client secret, created here WITHOUT its value: CloudFormation generates a throwaway
  ``client_secret`` and ops overwrite it with the real one (``aws secretsmanager put-secret-value``);
  no secret value is ever in the template.
- per-advertiser refresh-token and access-token secrets under ``secret_prefix``, created at runtime
  by the functions. Grants to them are given by this construct so that the ARN patterns live in one
  place:

  ``grant_advertiser_secrets_write`` (callback: create/put/delete both kinds, read a replaced
  version by its id only; ``deny_pack_secrets`` keeps it out of the packs' secrets, which only
  the refresher writes), ``grant_refresh_secrets_read_write`` (refresh worker: read/put refresh
  tokens), ``grant_access_secrets_write`` (refresh worker: put access tokens),
  ``grant_token_moves`` (refresh worker, packed layout: create/delete pack secrets and an
  advertiser's own when it joins or leaves a pack, read access tokens of packs only) and
  ``grant_read_tokens`` (downstream: read access tokens, packs' included, look up advertisers;
  nothing else).

The table: ``grant_items`` gives a function the DynamoDB actions its code makes, each on the
items whose partition key it touches (``dynamodb:LeadingKeys``: ``ADV#*``, ``INVITE#*``, the
platform pause …, patterns in ``infra.table_grants``), and the Queries it makes, per index. No
function may scan. Which function gets what is wired where the pieces meet (``infra.api``,
``infra.refresher``); ``tests/iam`` proves it by simulation against every call the functions make
in the test suite.

Every secret (the client secret here, the advertiser secrets at runtime with ``KmsKeyId``) is
encrypted with one customer-managed key with yearly rotation. Its key policy lets the account
administer the key but use it for encryption only through Secrets Manager of this account
(``kms:ViaService``), and each grant adds ``kms:Decrypt``/``GenerateDataKey`` for exactly the
secrets it covers (``kms:EncryptionContext:SecretARN``, which Secrets Manager sets on every call).

Reading the client secret and refresh tokens is denied by resource policy to every principal but
the roles under ``refresh_token_reader_path`` (callback, refresh worker), the account root (break
glass) and ``operator_principal_arns``. The client secret gets that policy here; a refresh-token
secret gets it from the vault when it is written (``REFRESH_SECRET_READERS``).
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

from adsauth import schema
from adsauth.cdk.coordinates import TokenCoordinates
from adsauth.cdk.grants import (
    KMS_READ_ACTIONS,
    SECRET_ARN_CONTEXT,
    grant_token_reads,
    secret_arn_pattern,
)
from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagSuppressions
from constructs import Construct

from infra import table_grants
from infra.constants import (
    SERVICE_NAME,
    advertiser_secret_prefix,
    client_secret_name,
    refresh_token_reader_path,
)

# What the callback/exchange path does with an advertiser's secrets; nothing wider. It creates
# them (tagged: CreateSecret with Tags needs TagResource), finds the current version
# (DescribeSecret), writes new grants (PutSecretValue) and, when its completion lost a race against
# a revoke or a newer grant, takes its own writes back: DeleteSecret for a secret it created, and
# the replaced version read back BY ITS VERSION ID (see ``VERSION_READ``). It never reads a
# current token, never changes a secret's settings (no UpdateSecret).
ADVERTISER_SECRET_WRITE_ACTIONS = (
    "secretsmanager:CreateSecret",
    "secretsmanager:TagResource",
    "secretsmanager:DescribeSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:DeleteSecret",
)
# The one read the exchange path makes (``vault.undo_grant``): a version it replaced, named by id.
# A read without VersionId (the current token of any advertiser) is not allowed.
VERSION_READ_ACTIONS = ("secretsmanager:GetSecretValue",)
VERSION_READ = {"Null": {"secretsmanager:VersionId": "false"}}
# The refresher reads an advertiser's refresh token and stores the one LwA may send back.
REFRESH_SECRET_READ_WRITE_ACTIONS = (
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
)
# The refresher stores each new access token in the advertiser's existing access-token secret
# (PutSecretValue). The exchange path creates that secret; the refresher never creates one, nor
# reads one.
ACCESS_SECRET_WRITE_ACTIONS = ("secretsmanager:PutSecretValue",)
# Downstream (read an access token, find the advertiser of a profile; nothing else):
# TOKEN_READ_SECRET_ACTIONS, TOKEN_READ_TABLE_ACTIONS in adsauth.cdk.grants, shared with
# AdsAuthTokens in other apps.
# The exchange path puts the "only these readers" resource policy on each refresh-token secret.
REFRESH_SECRET_POLICY_ACTIONS = ("secretsmanager:PutResourcePolicy",)
# What the resource policies deny to everyone but the readers.
PROTECTED_SECRET_ACTIONS = ("secretsmanager:GetSecretValue",)

# Secrets Manager encrypts with envelope encryption: GenerateDataKey when a value is written,
# Decrypt when it is read (writers get Decrypt too: with kms:ViaService it is only usable through
# GetSecretValue, which IAM and the resource policies govern).
KMS_WRITE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# The account administers the key (break glass included: an administrator may rewrite the policy),
# but no statement lets anyone create grants or use the key outside Secrets Manager.
KEY_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)
KEY_USE_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")



def _attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class Storage(Construct):
    """The table, the LwA client secret and the advertiser secret namespace."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        client_id: str,
        operator_principal_arns: tuple[str, ...] = (),
        table_deletion_protection: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.secrets_key = self._secrets_key(stack.stack_name)
        self.reader_role_path = refresh_token_reader_path(stack.stack_name)
        # Who may read the client secret and refresh tokens: ARN patterns for aws:PrincipalArn.
        self.secret_reader_patterns: list[str] = [
            f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:root",
            f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role{self.reader_role_path}*",
            *operator_principal_arns,
        ]

        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_attribute(schema.PK),
            sort_key=_attribute(schema.SK),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=schema.TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # CloudFormation cannot delete a deletion-protected table, so a protected table would
            # make a failed first deploy's rollback fail (ROLLBACK_FAILED, the table left behind):
            # protection is switched on by configuration once the first deploy has succeeded.
            deletion_protection=table_deletion_protection,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        self.table.add_global_secondary_index(
            index_name=schema.PROFILE_INDEX,
            partition_key=_attribute(schema.PROFILE_INDEX_PK),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.table.add_global_secondary_index(
            index_name=schema.EXPIRY_INDEX,
            partition_key=_attribute(schema.EXPIRY_INDEX_PK),
            sort_key=_attribute(schema.EXPIRY_INDEX_SK),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.table.add_global_secondary_index(
            index_name=schema.KIND_INDEX,
            partition_key=_attribute(schema.KIND_INDEX_PK),
            sort_key=_attribute(schema.KIND_INDEX_SK),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        self.client_secret_name = client_secret_name(stack.stack_name)
        self.client_secret = secretsmanager.Secret(
            self,
            "LwaClientSecret",
            secret_name=self.client_secret_name,
            description=(
                "LwA client {client_id, client_secret} for adsauth. The generated client_secret is "
                "a placeholder: put the real one with `aws secretsmanager put-secret-value`."
            ),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"client_id": client_id}),
                generate_string_key="client_secret",
            ),
            # Fixed name: a copy left by a rolled-back first deploy would block the retry.
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        # The key is set on the L1 so that CDK adds no key-policy statement of its own: the key
        # policy above is the whole of it.
        cfn_secret = self.client_secret.node.default_child
        assert isinstance(cfn_secret, secretsmanager.CfnSecret)
        cfn_secret.kms_key_id = self.secrets_key.key_arn
        self.client_secret.add_to_resource_policy(self.readers_only_statement())
        # Retained with the secret: a secret left behind by `cdk destroy` stays protected.
        self.client_secret.node.find_child("Policy").node.default_child.apply_removal_policy(
            RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
        )
        NagSuppressions.add_resource_suppressions(
            self.client_secret,
            [
                {
                    "id": "AwsSolutions-SMG4",
                    "reason": "The LwA client secret is issued in the LwA console and can only be "
                    "rotated there; ops then put the new value. No rotation Lambda can do it.",
                }
            ],
        )

        self.secret_prefix = advertiser_secret_prefix(stack.stack_name)
        self.refresh_secrets_arn = self._secret_arn_pattern("refresh/*")
        self.access_secrets_arn = self._secret_arn_pattern("access/*")
        self.access_packs_arn = self._secret_arn_pattern("access/packs/*")  # adsauth.packs
        self.refresh_packs_arn = self._secret_arn_pattern("refresh/packs/*")
        self.profile_index_arn = f"{self.table.table_arn}/index/{schema.PROFILE_INDEX}"

    def _secrets_key(self, stack_name: str) -> kms.Key:
        account = iam.AccountRootPrincipal()
        policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="AdministrationByThisAccount",
                    principals=[account],
                    actions=list(KEY_ADMIN_ACTIONS),
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="UseOnlyThroughSecretsManagerOfThisAccount",
                    principals=[account],
                    actions=list(KEY_USE_ACTIONS),
                    resources=["*"],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": self.secrets_manager_endpoint,
                            "kms:CallerAccount": Aws.ACCOUNT_ID,
                        }
                    },
                ),
            ]
        )
        return kms.Key(
            self,
            "SecretsKey",
            description=f"{SERVICE_NAME} {stack_name}: encrypts the LwA client secret and the "
            "advertisers' token secrets (Secrets Manager only)",
            alias=f"alias/{SERVICE_NAME}/{stack_name}/secrets",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            policy=policy,
            # Retained: every secret ever written is encrypted under it, including the
            # per-advertiser secrets that outlive the stack (see docs/runbook.md, Destroy the stack without losing tokens).
            # Except when the deploy that created it rolls back: no secret uses it yet.
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )

    @property
    def secrets_manager_endpoint(self) -> str:
        return f"secretsmanager.{Aws.REGION}.amazonaws.com"

    def readers_only_statement(self) -> iam.PolicyStatement:
        """Deny reading to every principal whose ARN matches none of ``secret_reader_patterns``."""
        return iam.PolicyStatement(
            sid="OnlyTokenReadersMayRead",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(PROTECTED_SECRET_ACTIONS),
            resources=["*"],
            conditions={"StringNotLike": {"aws:PrincipalArn": list(self.secret_reader_patterns)}},
        )

    def _grant_key(
        self, grantee: iam.IGrantable, actions: tuple[str, ...], secret_arns: list[str]
    ) -> iam.Grant:
        """KMS for these secrets only, and only through Secrets Manager."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[self.secrets_key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": self.secrets_manager_endpoint},
                "StringLike": {SECRET_ARN_CONTEXT: secret_arns},
            },
        )

    def _secret_arn_pattern(self, suffix: str) -> str:
        return secret_arn_pattern(self, f"{self.secret_prefix}{suffix}")

    def grant_items(
        self,
        grantee: iam.IGrantable,
        items: Mapping[str, Sequence[str]],
        *,
        queries: Mapping[str | None, Sequence[str]] | None = None,
    ) -> iam.Grant:
        """DynamoDB actions on the items of the given partition-key patterns, and Queries of
        the table or its indexes by the keys they name: see ``infra.table_grants``."""
        return table_grants.grant_items(self.table, grantee, items, queries=queries)

    def grant_client_secret_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """GetSecretValue on the LwA client secret and Decrypt for it, nothing else. The grantee's
        role must also sit under ``reader_role_path``, or the secret's resource policy denies it."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["secretsmanager:GetSecretValue"],
            resource_arns=[self.client_secret.secret_arn],
        )
        return grant.combine(
            self._grant_key(grantee, KMS_READ_ACTIONS, [self.client_secret.secret_arn])
        )

    def grant_advertiser_secrets_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """Create, store and delete refresh- and access-token secrets (the exchange path), read
        a version of them only by its id (undoing a lost grant), and put the readers-only
        resource policy on refresh-token secrets."""
        secrets = [self.refresh_secrets_arn, self.access_secrets_arn]
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=list(ADVERTISER_SECRET_WRITE_ACTIONS), resource_arns=secrets
        )
        grant = grant.combine(
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=list(VERSION_READ_ACTIONS),
                resource_arns=secrets,
                conditions=VERSION_READ,
            )
        ).combine(
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=list(REFRESH_SECRET_POLICY_ACTIONS),
                resource_arns=[self.refresh_secrets_arn],
            )
        ).combine(self._grant_key(grantee, KMS_WRITE_ACTIONS, secrets))
        _acknowledge_wildcards(
            grantee,
            [
                "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
                f"secret:{self.secret_prefix}{kind}/*"
                for kind in ("refresh", "access")
            ],
            "One secret per advertiser, created at runtime, so names are not known at deploy "
            "time; the pattern is limited to this stack's advertiser prefix, and reads to a "
            "version named by id (secretsmanager:VersionId).",
        )
        return grant

    def grant_refresh_secrets_read_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read and replace refresh tokens (the refresher); no create, no delete."""
        grant = self._grant_advertiser_secrets(grantee, "refresh", REFRESH_SECRET_READ_WRITE_ACTIONS)
        return grant.combine(self._grant_key(grantee, KMS_WRITE_ACTIONS, [self.refresh_secrets_arn]))

    def grant_access_secrets_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """Store access tokens in existing secrets (the refresher); no create, no read."""
        grant = self._grant_advertiser_secrets(grantee, "access", ACCESS_SECRET_WRITE_ACTIONS)
        return grant.combine(self._grant_key(grantee, KMS_WRITE_ACTIONS, [self.access_secrets_arn]))

    def deny_pack_secrets(self, role: iam.IRole) -> None:
        """No Secrets Manager action at all on the packs' secrets (``…/refresh/packs/*``,
        ``…/access/packs/*``): for the callback, whose grants on ``refresh/*`` and ``access/*``
        (an advertiser's own secrets) would match them. Only the refresher writes a pack."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="NoPackSecrets",
                effect=iam.Effect.DENY,
                actions=["secretsmanager:*"],
                resources=[self.refresh_packs_arn, self.access_packs_arn],
            )
        )

    def grant_token_moves(self, grantee: iam.IGrantable) -> iam.Grant:
        """The refresher's part in the packed layout (``adsauth.packs``): create, store and delete
        pack secrets and advertisers' own (an advertiser joining a pack leaves its own secrets,
        one leaving it gets them back), as the exchange path may; and read the access-token
        secrets of packs only (a pack's members not refreshed in a job keep their tokens), never
        an advertiser's own access-token secret."""
        grant = self.grant_advertiser_secrets_write(grantee)
        reads = iam.Grant.add_to_principal(
            grantee=grantee, actions=["secretsmanager:GetSecretValue"], resource_arns=[self.access_packs_arn]
        )
        _acknowledge_wildcards(
            grantee,
            [
                "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
                f"secret:{self.secret_prefix}access/packs/*"
            ],
            "Pack secrets are created at runtime as advertisers join, so names are not known at "
            "deploy time; the pattern is limited to this stack's packs.",
        )
        return grant.combine(reads)

    def grant_read_tokens(self, grantee: iam.IGrantable) -> iam.Grant:
        """What a downstream function needs, exactly: read access-token secrets (and Decrypt for
        them, through Secrets Manager), look up an advertiser and its profiles (GetItem, Query on
        the table and ``byProfile``). Never a refresh token, never the client secret, no table
        write and no scan. The statements are ``adsauth.cdk.grants``', the ones
        ``AdsAuthTokens`` gives functions of other apps."""
        return grant_token_reads(
            grantee,
            table_arn=self.table.table_arn,
            profile_index=schema.PROFILE_INDEX,
            secret_prefix=self.secret_prefix,
            secrets_key_arn=self.secrets_key.key_arn,
        )

    def token_coordinates(self, *, client_id: str, token_layout: str) -> TokenCoordinates:
        """What this stack publishes for token readers in other apps (``adsauth.cdk``)."""
        return TokenCoordinates(
            table_name=self.table.table_name,
            table_arn=self.table.table_arn,
            profile_index=schema.PROFILE_INDEX,
            secret_prefix=self.secret_prefix,
            secrets_key_arn=self.secrets_key.key_arn,
            client_id=client_id,
            token_layout=token_layout,
        )

    def _grant_advertiser_secrets(
        self, grantee: iam.IGrantable, kind: str, actions: tuple[str, ...]
    ) -> iam.Grant:
        arn = {"refresh": self.refresh_secrets_arn, "access": self.access_secrets_arn}[kind]
        grant = iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=[arn])
        _acknowledge_wildcards(
            grantee,
            [
                "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
                f"secret:{self.secret_prefix}{kind}/*"
            ],
            f"One {kind}-token secret per advertiser, created at runtime, so names are not known "
            "at deploy time; the pattern is limited to this stack's advertiser prefix.",
        )
        return grant


def _acknowledge_wildcards(grantee: iam.IGrantable, applies_to: list[str], reason: str) -> None:
    # The finding sits on the principal's default policy (the function role's), nowhere else.
    principal = grantee.grant_principal
    if isinstance(principal, iam.Role):
        NagSuppressions.add_resource_suppressions_by_path(
            Stack.of(principal),
            f"{principal.node.path}/DefaultPolicy/Resource",
            [{"id": "AwsSolutions-IAM5", "reason": reason, "appliesTo": applies_to}],
        )
