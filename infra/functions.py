"""One factory for every adsauth function, so they all get the same runtime, layer and limits."""

from __future__ import annotations

from typing import Mapping

from aws_cdk import CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.constants import (
    FUNCTION_MEMORY_MB,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    LOG_RETENTION,
    POWERTOOLS_LAYER_PARAMETER,
)


def powertools_layer(scope: Construct, construct_id: str = "PowertoolsLayer") -> lambda_.ILayerVersion:
    """The AWS-managed Powertools layer at the pinned version, its ARN resolved at deploy time
    from the public SSM parameter (so the template works in every region)."""
    arn = ssm.StringParameter.value_for_string_parameter(scope, POWERTOOLS_LAYER_PARAMETER)
    return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, arn)


class AdsAuthFunction(Construct):
    """A Python function with its own log group (explicit retention), X-Ray tracing and the
    Powertools layer. ``function`` is the grantable Lambda.

    Its role starts empty (no AWS-managed policy) and may only write to its own log group; every
    other permission is a grant where the pieces meet. ``role_path`` puts the role under an IAM
    path that resource policies can name (see ``constants.refresh_token_reader_path``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        timeout: Duration,
        memory_size: int = FUNCTION_MEMORY_MB,
        reserved_concurrent_executions: int | None = None,
        role_path: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=LOG_RETENTION,
            # Kept when the stack goes (the logs of what happened), deleted when the deploy that
            # created it rolls back, so a retry does not trip over it.
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"adsauth {construct_id} function",
            path=role_path,
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            handler=handler,
            description=description,
            code=code,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            layers=layers,
            environment=dict(environment),
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrent_executions,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            role=self.role,
        )
        self._depend_on_policy_only()
        NagSuppressions.add_resource_suppressions_by_path(
            Stack.of(self),
            f"{self.role.node.path}/DefaultPolicy/Resource",
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords "
                    "do not support resource-level permissions.",
                    "appliesTo": ["Resource::*"],
                },
            ],
        )

    def _depend_on_policy_only(self) -> None:
        # Lambda depends on a role passed in as a whole construct: the role (already a GetAtt
        # dependency, which cfn-lint flags as W3005) and its default policy. Only the policy needs
        # the explicit DependsOn: the function must not start before it may write its logs.
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(policy, CfnResource)
        function = self.function.node.default_child
        assert isinstance(function, CfnResource)
        function.add_override("DependsOn", [policy.logical_id])
