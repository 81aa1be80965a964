"""An example downstream stack: one function that reads an access token and calls the Ads API.

Not deployed by default. ``cdk synth -c example_consumer=true`` (or ``deploy``) adds it to the app
as ``AdsAuthExampleConsumer``. It shows the two things a downstream team needs:

- the ``adsauth`` package as a layer (``infra.bundling.client_layer_code``: the same bundling as
  our functions, under ``python/``), so the handler can ``from adsauth.client import ...``;
- ``AdsAuthStack.grant_read_tokens(fn)``: read access to access tokens and the table, nothing else.
"""

from __future__ import annotations

from aws_cdk import CrossStackReferences, Duration, ReferenceStrength, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import client_layer_code
from infra.constants import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from infra.functions import AdsAuthFunction
from infra.stack import AdsAuthStack

CONTEXT_FLAG = "example_consumer"

HANDLER_SOURCE = '''\
from adsauth.client import AdsApiSession, get_access_token


def handler(event, context):
    profile_id = int(event["profile_id"])
    # Use the token in an Authorization header; never log it.
    get_access_token(profile_id=profile_id, min_remaining_minutes=10)
    profiles = AdsApiSession(profile_id).list_profiles()
    return {"profile_id": profile_id, "profiles_in_region": len(profiles)}
'''


class ExampleConsumerStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, adsauth: AdsAuthStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Exports/imports, as always: CloudFormation then refuses to remove the table's export
        # while this stack uses it.
        CrossStackReferences.of(self).consume(ReferenceStrength.STRONG)
        self.client_layer = lambda_.LayerVersion(
            self,
            "AdsAuthClient",
            description="adsauth client package (from adsauth.client import get_access_token)",
            code=client_layer_code(),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
        )
        self.function = AdsAuthFunction(
            self,
            "Consumer",
            handler="index.handler",
            description="adsauth example consumer: list profiles with a brokered access token",
            code=lambda_.Code.from_inline(HANDLER_SOURCE),
            layers=[self.client_layer],
            environment={},  # grant_read_tokens adds the ADSAUTH_* variables
            timeout=Duration.seconds(30),
        ).function
        adsauth.grant_read_tokens(self.function)
