"""An example downstream stack, built the way another CDK app builds one: one function that reads
an access token and calls the Ads API.

Not deployed by default. ``cdk synth -c example_consumer=true`` (or ``deploy``) adds it to the app
as ``AdsAuthExampleConsumer``. The adsauth part is what any app with ``pip install 'adsauth[cdk]'``
writes, two lines:

- ``AdsAuthTokens.from_stack(self, "AdsAuthTokens", stack_name=...)``: the deployed stack's
  coordinates, read from its SSM parameters at deploy time (no CloudFormation export, so the
  adsauth stack stays free to change and to be replaced);
- ``tokens.grant_read_tokens(fn)``: read access to access tokens and the table, nothing else, the
  ``ADSAUTH_*`` variables and the ``adsauth.client`` layer.

The function itself is this repository's factory (own log group, X-Ray, a role with no managed
policy); any ``lambda_.Function`` will do.
"""

from __future__ import annotations

from adsauth.cdk import AdsAuthTokens
from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.functions import AdsAuthFunction

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
    """``adsauth``: the adsauth stack's name, or the stack itself when both are in one app (then
    this stack is deployed after it: an ordering only, nothing is exported)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, adsauth: Stack | str = "AdsAuth", **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if isinstance(adsauth, Stack):
            self.add_stack_dependency(adsauth, reason="reads the coordinates the adsauth stack publishes in SSM")
            adsauth = adsauth.stack_name
        self.tokens = AdsAuthTokens.from_stack(self, "AdsAuthTokens", stack_name=adsauth)
        self.function = AdsAuthFunction(
            self,
            "Consumer",
            handler="index.handler",
            description="adsauth example consumer: list profiles with a brokered access token",
            code=lambda_.Code.from_inline(HANDLER_SOURCE),
            layers=[],  # grant_read_tokens adds the client layer
            environment={},  # and the ADSAUTH_* variables
            timeout=Duration.seconds(30),
        ).function
        self.tokens.grant_read_tokens(self.function)
        self.client_layer = self.tokens.client_layer
