"""The adsauth stack: composes the constructs and publishes what ops need to know."""

from __future__ import annotations

from adsauth.cdk.coordinates import TokenCoordinates, publish_coordinates
from adsauth.cdk.tokens import client_environment
from aws_cdk import Annotations, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.api import PublicApi
from infra.config import AdsAuthConfig
from infra.event_bus import LifecycleEventBus
from infra.functions import powertools_layer
from infra.monitoring import AlertTopic, Monitoring
from infra.refresher import Refresher
from infra.storage import Storage


class AdsAuthStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AdsAuthConfig, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.storage = Storage(
            self,
            "Storage",
            client_id=config.client_id,
            operator_principal_arns=config.operator_principal_arns,
            table_deletion_protection=config.table_deletion_protection,
        )
        layers = [powertools_layer(self)]
        self.alerts = AlertTopic(self, "Alerts", alert_email=config.alert_email)
        self.event_bus = LifecycleEventBus(self, "Events")
        self.api = PublicApi(
            self, "Api", config=config, storage=self.storage, event_bus=self.event_bus, layers=layers
        )
        # The refresher gets the API's base URL (built from the API id, so no cycle: nothing in
        # the API refers to the refresher).
        self.refresher = Refresher(
            self,
            "Refresher",
            config=config,
            storage=self.storage,
            public_base_url=self.api.public_base_url,
            alert_topic=self.alerts.topic,
            event_bus=self.event_bus,
            layers=layers,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            topic=self.alerts.topic,
            api=self.api,
            refresher=self.refresher,
            refresh_schedule_minutes=config.refresh_schedule_minutes,
        )
        self.table = self.storage.table
        self.client_secret = self.storage.client_secret
        self.rest_api = self.api.rest_api

        self._outputs()
        self._publish_coordinates()
        if config.is_placeholder_client:
            Annotations.of(self).add_warning_v2(
                "adsauth:placeholder-client-id",
                "cdk.json context adsauth.client_id is still the EXAMPLE placeholder; set the "
                "client id of your LwA security profile before deploying.",
            )

    def grant_read_tokens(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let a downstream principal read access tokens, and nothing more secret.

        Exactly three statements: ``secretsmanager:GetSecretValue`` and ``DescribeSecret`` on
        ``<SecretPrefix>access/*``; ``kms:Decrypt`` on the secrets key, only through Secrets Manager
        and only for those secrets (encryption context); ``dynamodb:GetItem`` and ``dynamodb:Query``
        on the table and its ``byProfile`` index. Never a refresh token, never the LwA client
        secret, no table write or scan. A ``lambda_.Function`` also gets the variables ``adsauth.client`` reads:
        ``ADSAUTH_TABLE_NAME``, ``ADSAUTH_SECRET_PREFIX``, ``ADSAUTH_LWA_CLIENT_ID``.
        """
        grant = self.storage.grant_read_tokens(grantee)
        if isinstance(grantee, lambda_.Function):
            for name, value in client_environment(self.coordinates).items():
                grantee.add_environment(name, value)
        return grant

    @property
    def coordinates(self) -> TokenCoordinates:
        """What token readers need (``adsauth.cdk.TokenCoordinates``), as references."""
        return self.storage.token_coordinates(
            client_id=self.config.client_id, token_layout=self.config.token_layout
        )

    def _publish_coordinates(self) -> None:
        """The coordinates as SSM parameters ``/adsauth/<stack>/…``, which
        ``adsauth.cdk.AdsAuthTokens.from_stack`` reads in other CDK apps: no export to hold."""
        publish_coordinates(self, "Coordinates", self.coordinates)

    def _outputs(self) -> None:
        """What ops need after a deploy. The ops CLI (``adsauth --stack``) reads these names, so
        keep them stable."""
        config = self.config
        outputs = {
            "CallbackUrl": (
                self.api.callback_url,
                "Register exactly this as an Allowed Return URL of the LwA security profile",
            ),
            "InvitationBaseUrl": (
                self.api.public_base_url,
                "Public base URL; invitation links are <this>/connect/<token> (PUBLIC_BASE_URL)",
            ),
            "TableName": (self.table.table_name, "DynamoDB table of advertisers, profiles, invitations"),
            "ClientId": (config.client_id, "LwA client id (not a secret)"),
            "ClientSecretName": (
                self.storage.client_secret_name,
                "Put the LwA client {client_id, client_secret} here with put-secret-value",
            ),
            "SecretPrefix": (self.storage.secret_prefix, "Prefix of the per-advertiser token secrets"),
            "OperatorName": (config.operator_name, "Name shown to advertisers on every page and e-mail"),
            "AllowedRegions": (",".join(config.allowed_regions), "Regions an invitation may name"),
            "InvitationTtlSeconds": (str(config.invitation_ttl_seconds), "Invitation lifetime"),
            "AlertTopicArn": (
                self.alerts.topic.topic_arn,
                "Alarms and alerts (refresh failures, re-authorization needed, DLQs): subscribe here",
            ),
            "EventBusName": (
                self.event_bus.bus.event_bus_name,
                "EventBridge bus of the lifecycle events (source adsauth): put your rules here",
            ),
            "EventBusArn": (self.event_bus.bus.event_bus_arn, "ARN of the lifecycle event bus"),
            "RefreshQueueUrl": (self.refresher.queue.queue_url, "Queue of advertisers to refresh"),
            "RefreshDlqUrl": (
                self.refresher.dead_letter_queue.queue_url,
                "Refreshes that failed 5 times; redrive after fixing the cause",
            ),
            "DispatcherDlqUrl": (
                self.refresher.dispatcher_dead_letter_queue.queue_url,
                "Failed or dropped dispatcher runs (diagnosis only; purge after reading)",
            ),
            "TokenLayout": (
                config.token_layout,
                "Where advertisers' tokens live (token_layout): migrate-layout checks it",
            ),
            "SecretsKeyArn": (
                self.storage.secrets_key.key_arn,
                "KMS key of every adsauth secret (retained; import it when re-creating the stack)",
            ),
            "DashboardName": (
                self.monitoring.dashboard.dashboard_name,
                "CloudWatch dashboard with the onboarding, refresh, API and function figures",
            ),
            **{
                f"{name}LogGroup": (fn.log_group.log_group_name, f"Log group of the {name} function")
                for name, fn in (
                    ("Connect", self.api.connect_function),
                    ("Callback", self.api.callback_function),
                    ("Dispatcher", self.refresher.dispatcher),
                    ("Worker", self.refresher.worker),
                )
            },
        }
        # CloudFormation refuses empty output values: optional settings appear only when set.
        if config.from_address:
            outputs["SesFromAddress"] = (
                config.from_address,
                f"Address the ops CLI and the refresh worker send e-mail from (SES identity "
                f"{config.ses_sender})",
            )
        if config.support_contact:
            outputs["SupportContact"] = (
                config.support_contact, "Contact shown to advertisers on every page and e-mail"
            )
        if config.footer_text:
            outputs["FooterText"] = (config.footer_text, "Footer line of every page and e-mail")
        if self.api.firewall is not None:
            outputs["WebAclArn"] = (self.api.firewall.web_acl.attr_arn, "WAF web ACL of the API stage")
        if self.api.domain is not None:
            outputs["CustomDomainTarget"] = (
                self.api.domain.domain_name_alias_domain_name,
                "Point the callback_domain DNS record (CNAME/alias) at this name",
            )
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)
