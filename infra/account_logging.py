"""The region's API Gateway CloudWatch role (``api_cloudwatch_role`` ``"auto"``, the default).

API Gateway writes every API's access and execution logs in a region through ONE role, set on the
account (``AWS::ApiGateway::Account``). A new account has none, and a stage with logging then
fails to deploy; an older account usually has one that other teams' APIs rely on, and CDK's
``cloud_watch_role=True`` would silently replace it. ``"auto"`` does neither: a custom resource
(``infra/account_logging_handler.py``, inline code) sets this stack's role only when the account
has none, never replaces one, and leaves the setting alone when the stack goes. Its function may
read and update the account's API Gateway settings and pass this one role to API Gateway, nothing
else; it runs at deploy time only.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.functions import AdsAuthFunction

HANDLER_SOURCE = Path(__file__).with_name("account_logging_handler.py")
PUSH_TO_CLOUDWATCH_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
SETTER_DESCRIPTION = "adsauth: set the API Gateway CloudWatch role when the account has none"


class AccountLoggingRole(Construct):
    """The logging role and the custom resource that sets it when the account has none.
    ``resource`` is what the stage must depend on."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway CloudWatch logging role of this region (set by adsauth only "
            "when the account had none)",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(PUSH_TO_CLOUDWATCH_POLICY)],
        )
        # Once set on the account, other APIs may log through it: kept when the stack goes.
        self.role.apply_removal_policy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
        setter = AdsAuthFunction(
            self,
            "Setter",
            handler="index.handler",
            description=SETTER_DESCRIPTION,
            code=lambda_.Code.from_inline(HANDLER_SOURCE.read_text()),
            layers=[],
            environment={},
            timeout=Duration.minutes(3),
            memory_size=128,
        )
        account_arn = stack.format_arn(service="apigateway", account="", resource="/account")
        setter.role.add_to_policy(
            iam.PolicyStatement(actions=["apigateway:GET", "apigateway:PATCH"], resources=[account_arn])
        )
        setter.role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "apigateway.amazonaws.com"}},
            )
        )
        self.resource = CustomResource(
            self,
            "Setting",
            service_token=setter.function.function_arn,
            resource_type="Custom::ApiGatewayCloudWatchRole",
            properties={"RoleArn": self.role.role_arn},
        )
        self.resource.node.add_dependency(setter.role)
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                {
                    "id": "AwsSolutions-IAM4",
                    "reason": "The API Gateway logging role uses the AWS-managed "
                    "AmazonAPIGatewayPushToCloudWatchLogs policy, which exists for this purpose.",
                    "appliesTo": [f"Policy::arn:<AWS::Partition>:iam::aws:policy/{PUSH_TO_CLOUDWATCH_POLICY}"],
                }
            ],
            apply_to_children=True,
        )
