"""The public REST API and the two functions behind it.

| route                      | function | auth | what it does                                     |
|----------------------------|----------|------|--------------------------------------------------|
| GET  /connect/{invitation} | connect  | none | starts the LwA flow (state, PKCE) → 302 to LwA   |
| GET  /result/{outcome}     | connect  | none | the fixed "connected"/error page                 |
| GET  /callback             | callback | none | LwA redirect back: exchange the code, store all  |
| POST /token                | callback | IAM  | ops' manual exchange of a pasted code            |

The connect function never touches a secret; only the callback function reads the LwA client
secret and writes advertiser secrets.
"""

from __future__ import annotations

from aws_cdk import Aws, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.config import AdsAuthConfig
from infra.constants import (
    API_FUNCTION_TIMEOUT,
    API_THROTTLE_BURST_LIMIT,
    API_THROTTLE_RATE_LIMIT,
    CALLBACK_HANDLER,
    CONNECT_HANDLER,
    LOG_RETENTION,
)
from infra.environment import function_environment
from infra.functions import AdsAuthFunction
from infra.storage import Storage


class PublicApi(Construct):
    """RestApi (regional) with one stage, its routes, and the connect and callback functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AdsAuthConfig,
        storage: Storage,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.RETAIN
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="adsauth: LwA authorization broker",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access and execution logging need the account-level API Gateway logging role; keep
            # it when the stack goes, other APIs in the account may rely on it.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage_name,
                tracing_enabled=True,
                throttling_rate_limit=API_THROTTLE_RATE_LIMIT,
                throttling_burst_limit=API_THROTTLE_BURST_LIMIT,
                metrics_enabled=True,
                # ERROR only and no data trace: INFO would log query strings (the LwA code).
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                # resourcePath is the route template, so no invitation token reaches a log line.
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )

        self.domain: apigw.DomainName | None = None
        if config.callback_domain:
            self.public_base_url = f"https://{config.callback_domain}"
            self.domain = apigw.DomainName(
                self,
                "Domain",
                domain_name=config.callback_domain,
                certificate=acm.Certificate.from_certificate_arn(
                    self, "Certificate", config.certificate_arn
                ),
                endpoint_type=apigw.EndpointType.REGIONAL,
                security_policy=apigw.SecurityPolicy.TLS_1_2,
            )
            self.domain.add_base_path_mapping(self.rest_api, stage=self.rest_api.deployment_stage)
        else:
            # Built from the API id, not from rest_api.url: that references the stage, which
            # depends on the methods, which depend on the functions: a cycle.
            self.public_base_url = Fn.join(
                "",
                [
                    "https://",
                    self.rest_api.rest_api_id,
                    ".execute-api.",
                    Aws.REGION,
                    ".",
                    Aws.URL_SUFFIX,
                    "/",
                    config.stage_name,
                ],
            )
        self.callback_url = f"{self.public_base_url}/callback"

        environment = function_environment(config, storage, self.public_base_url)
        self.connect_function = AdsAuthFunction(
            self,
            "Connect",
            handler=CONNECT_HANDLER,
            description="adsauth: start the LwA flow for an invitation; result pages",
            code=code,
            layers=layers,
            environment=environment,
            timeout=API_FUNCTION_TIMEOUT,
        ).function
        self.callback_function = AdsAuthFunction(
            self,
            "Callback",
            handler=CALLBACK_HANDLER,
            description="adsauth: LwA callback and ops token exchange",
            code=code,
            layers=layers,
            environment=environment,
            timeout=API_FUNCTION_TIMEOUT,
        ).function

        storage.grant_table_read_write(self.connect_function)
        storage.grant_table_read_write(self.callback_function)
        storage.grant_client_secret_read(self.callback_function)
        storage.grant_advertiser_secrets_write(self.callback_function)

        self._add_routes()
        self._acknowledge_findings()

    def _add_routes(self) -> None:
        connect = apigw.LambdaIntegration(self.connect_function, allow_test_invoke=False)
        callback = apigw.LambdaIntegration(self.callback_function, allow_test_invoke=False)
        root = self.rest_api.root
        root.add_resource("connect").add_resource("{invitation}").add_method("GET", connect)
        root.add_resource("result").add_resource("{outcome}").add_method("GET", connect)
        root.add_resource("callback").add_method("GET", callback)
        root.add_resource("token").add_method(
            "POST", callback, authorization_type=apigw.AuthorizationType.IAM
        )

    def _acknowledge_findings(self) -> None:
        stack = Stack.of(self)
        NagSuppressions.add_resource_suppressions(
            self.rest_api,
            [
                {
                    "id": "AwsSolutions-APIG2",
                    "reason": "Every input is validated by the handlers, which answer with fixed "
                    "messages; the browser routes carry only a path parameter or LwA's query string.",
                },
                {
                    "id": "AwsSolutions-APIG4",
                    "reason": "GET /connect, /result and /callback are opened by an advertiser's "
                    "browser and by LwA's redirect, so they cannot carry credentials; they are "
                    "protected by single-use invitation tokens and state. POST /token uses IAM.",
                },
                {
                    "id": "AwsSolutions-COG4",
                    "reason": "No Cognito user pool: the browser routes are public by design "
                    "(see APIG4) and POST /token is IAM-authorized for ops.",
                },
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions_by_path(
            stack,
            f"{self.rest_api.node.path}/CloudWatchRole/Resource",
            [
                {
                    "id": "AwsSolutions-IAM4",
                    "reason": "The account-level API Gateway logging role uses the AWS-managed "
                    "AmazonAPIGatewayPushToCloudWatchLogs policy, which exists for this purpose.",
                    "appliesTo": [
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        "AmazonAPIGatewayPushToCloudWatchLogs"
                    ],
                }
            ],
        )
