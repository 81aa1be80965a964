"""The public REST API and the two functions behind it.

| route                      | function | auth | what it does                                     |
|----------------------------|----------|------|--------------------------------------------------|
| GET  /connect/{invitation} | connect  | none | starts the LwA flow (state, PKCE) → 302 to LwA   |
| GET  /result/{outcome}     | connect  | none | the fixed "connected"/error page                 |
| GET  /callback             | callback | none | LwA redirect back: exchange the code, store all  |
| POST /token                | callback | IAM  | ops' manual exchange of a pasted code            |

The connect function never touches a secret; only the callback function reads the LwA client
secret, writes advertiser secrets and publishes lifecycle events. With
``callback_reserved_concurrency`` set (default ``null``, none: a new account's quota allows none),
the callback's reserved concurrency caps the parallel code exchanges sent to LwA.

The stage: explicit throttling (``api_throttle_*``), access logs by route template (never a
path or query string, so never an invitation token, a code or a state), execution logs at ERROR
without data trace, and an AWS WAF web ACL when ``waf_enabled``. No X-Ray tracing on the stage: its
segments record the full request URL, query string included (invitation token, code, state); the
functions are traced, and their segments carry no URL.

Both kinds of stage logs need the account's API Gateway CloudWatch role, ONE per account and
region: ``api_cloudwatch_role`` ``"auto"`` (default) sets this stack's role only when the account
has none (``infra.account_logging``), ``"existing"`` leaves the setting alone, ``"create"`` creates
a role and sets it (``AWS::ApiGateway::Account``), replacing any other.
"""

from __future__ import annotations

from adsauth import schema
from aws_cdk import Aws, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.account_logging import AccountLoggingRole
from infra.bundling import function_code
from infra.config import AdsAuthConfig
from infra.constants import (
    API_FUNCTION_TIMEOUT,
    CALLBACK_HANDLER,
    CONNECT_HANDLER,
    LOG_RETENTION,
)
from infra.environment import function_environment, grant_environment, secret_writer_environment
from infra.event_bus import LifecycleEventBus
from infra.firewall import ApiFirewall
from infra.functions import AdsAuthFunction
from infra.storage import Storage
from infra.table_grants import (
    ADVERTISER_ITEMS,
    IDEMPOTENCY_ITEMS,
    INVITATION_ITEMS,
    OUTBOX_ITEMS,
    PENDING_EVENTS,
    STATE_ITEMS,
)

# The table, as each function's code uses it (Storage.grant_items: actions by partition-key
# pattern). connect (Onboarding.start): read the invitation, store the state, count the flow on
# the invitation, check the advertiser's generation.
CONNECT_ITEMS = {
    "GetItem": (INVITATION_ITEMS,),
    "PutItem": (STATE_ITEMS,),
    "UpdateItem": (INVITATION_ITEMS,),
    "ConditionCheckItem": (ADVERTISER_ITEMS,),
}
# callback (Onboarding.check_state/complete, POST /token): the state and its invitation, the
# advertiser's transitions with their outbox events, profiles and audit trail (batches of profiles
# seen again, of relayed events deleted), its Powertools idempotency records; the outbox relay.
CALLBACK_ITEMS = {
    "GetItem": (ADVERTISER_ITEMS, INVITATION_ITEMS, STATE_ITEMS, IDEMPOTENCY_ITEMS),
    "PutItem": (ADVERTISER_ITEMS, OUTBOX_ITEMS, IDEMPOTENCY_ITEMS),
    "UpdateItem": (ADVERTISER_ITEMS, INVITATION_ITEMS, STATE_ITEMS, IDEMPOTENCY_ITEMS),
    "DeleteItem": (IDEMPOTENCY_ITEMS,),
    "ConditionCheckItem": (ADVERTISER_ITEMS,),
    "BatchWriteItem": (ADVERTISER_ITEMS, OUTBOX_ITEMS),
}
CALLBACK_QUERIES = {None: (ADVERTISER_ITEMS,), schema.KIND_INDEX: (PENDING_EVENTS,)}

# The routes the advertiser's browser and LwA's redirect open: they cannot carry credentials.
BROWSER_ROUTES = (("connect/{invitation}", "GET"), ("result/{outcome}", "GET"), ("callback", "GET"))


class PublicApi(Construct):
    """RestApi (regional) with one stage, its routes, and the connect and callback functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AdsAuthConfig,
        storage: Storage,
        event_bus: LifecycleEventBus,
        layers: list[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.access_log_group = logs.LogGroup(
            self,
            "AccessLogs",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        creates_cloud_watch_role = config.api_cloudwatch_role == "create"
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="adsauth: LwA authorization broker",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access and execution logging need the account-level API Gateway logging role. The
            # setting is the region's, not this API's: only set it when configured to ("create"),
            # and then keep the role when the stack goes, other APIs may rely on it by then.
            cloud_watch_role=creates_cloud_watch_role,
            cloud_watch_role_removal_policy=(
                RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if creates_cloud_watch_role else None
            ),
            deploy_options=apigw.StageOptions(
                stage_name=config.stage_name,
                # Off: a stage segment records the full URL, query string included.
                tracing_enabled=False,
                throttling_rate_limit=config.api_throttle_rate_limit,
                throttling_burst_limit=config.api_throttle_burst_limit,
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
            code=function_code(CONNECT_HANDLER),
            layers=layers,
            environment=environment,
            timeout=API_FUNCTION_TIMEOUT,
        ).function
        self.callback_function = AdsAuthFunction(
            self,
            "Callback",
            handler=CALLBACK_HANDLER,
            description="adsauth: LwA callback and ops token exchange",
            code=function_code(CALLBACK_HANDLER),
            layers=layers,
            environment={
                **environment,
                **grant_environment(config),
                **secret_writer_environment(storage, creates_refresh_secrets=True),
            },
            timeout=API_FUNCTION_TIMEOUT,
            reserved_concurrent_executions=config.callback_reserved_concurrency,
            role_path=storage.reader_role_path,
        ).function

        storage.grant_items(self.connect_function, CONNECT_ITEMS)
        storage.grant_items(self.callback_function, CALLBACK_ITEMS, queries=CALLBACK_QUERIES)
        storage.grant_client_secret_read(self.callback_function)
        storage.grant_advertiser_secrets_write(self.callback_function)
        storage.deny_pack_secrets(self.callback_function.role)
        event_bus.grant_publish(self.callback_function)

        self.firewall: ApiFirewall | None = None
        if config.waf_enabled:
            self.firewall = ApiFirewall(
                self,
                "Firewall",
                stage=self.rest_api.deployment_stage,
                rate_limit=config.waf_rate_limit,
                metric_name=f"{Stack.of(self).stack_name}-api",
            )

        self.methods: dict[tuple[str, str], apigw.Method] = {}
        self._add_routes()
        self._acknowledge_findings()
        if config.api_cloudwatch_role == "auto":
            # The stage's logging needs the account's role: set ours first when there is none.
            self.account_logging = AccountLoggingRole(self, "AccountLogging")
            self.rest_api.deployment_stage.node.add_dependency(self.account_logging.resource)

    def _add_routes(self) -> None:
        connect = apigw.LambdaIntegration(self.connect_function, allow_test_invoke=False)
        callback = apigw.LambdaIntegration(self.callback_function, allow_test_invoke=False)
        root = self.rest_api.root
        routes = {
            ("connect/{invitation}", "GET"): (connect, apigw.AuthorizationType.NONE),
            ("result/{outcome}", "GET"): (connect, apigw.AuthorizationType.NONE),
            ("callback", "GET"): (callback, apigw.AuthorizationType.NONE),
            ("token", "POST"): (callback, apigw.AuthorizationType.IAM),
        }
        for (path, verb), (integration, authorization) in routes.items():
            self.methods[(path, verb)] = root.resource_for_path(path).add_method(
                verb, integration, authorization_type=authorization
            )

    def _acknowledge_findings(self) -> None:
        stack = Stack.of(self)
        NagSuppressions.add_resource_suppressions(
            self.rest_api.node.default_child,
            [
                {
                    "id": "AwsSolutions-APIG2",
                    "reason": "Request validation is done by the handlers, which check every input "
                    "(path parameter, LwA's query string, the /token JSON body against a strict "
                    "model) and answer with fixed messages; an API Gateway model would duplicate "
                    "that and could not check what matters (state, cookie binding, invitation).",
                },
            ],
        )
        for route in BROWSER_ROUTES:
            NagSuppressions.add_resource_suppressions(
                self.methods[route].node.default_child,
                [
                    {
                        "id": "AwsSolutions-APIG4",
                        "reason": "Opened by an advertiser's browser (the emailed link, the result "
                        "page) or by LwA's redirect back, which cannot carry credentials; access is "
                        "controlled by single-use, expiring invitation tokens and OAuth state bound "
                        "to the browser by a __Host- cookie. POST /token is IAM-authorized.",
                    },
                    {
                        "id": "AwsSolutions-COG4",
                        "reason": "Advertisers are not users of ours: they sign in at Amazon, and "
                        "the route is authorized by the invitation token or state (see APIG4). A "
                        "Cognito user pool would add an account nobody should have to create.",
                    },
                ],
            )
        NagSuppressions.add_resource_suppressions(
            self.methods[("token", "POST")].node.default_child,
            [
                {
                    "id": "AwsSolutions-COG4",
                    "reason": "POST /token is for ops only and IAM-authorized (SigV4, "
                    "AWS_IAM): operators use their AWS identities, no Cognito user pool needed.",
                },
            ],
        )
        if self.firewall is None:
            NagSuppressions.add_resource_suppressions(
                self.rest_api.deployment_stage.node.default_child,
                [
                    {
                        "id": "AwsSolutions-APIG3",
                        "reason": "WAF is off in this deployment (cdk.json waf_enabled: false, a "
                        "cost decision per deployment). The stage is throttled, every browser "
                        "route needs a single-use invitation token or state, and POST /token "
                        "needs IAM; set waf_enabled to add the AWS managed rules and a per-IP "
                        "rate limit.",
                    },
                ],
            )
        if self.config.api_cloudwatch_role != "create":
            return
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
