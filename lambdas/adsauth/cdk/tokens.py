"""``AdsAuthTokens``: an adsauth stack's tokens, seen from any CDK app of the same account and
region."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from adsauth.cdk.bundling import client_layer_code
from adsauth.cdk.coordinates import TokenCoordinates, check_stack_name, read_coordinates
from adsauth.cdk.grants import grant_token_reads

# The Python runtimes adsauth.client runs on (pyproject: requires-python >= 3.11); pure Python,
# so both architectures.
CLIENT_RUNTIMES = (
    lambda_.Runtime.PYTHON_3_11,
    lambda_.Runtime.PYTHON_3_12,
    lambda_.Runtime.PYTHON_3_13,
    lambda_.Runtime.PYTHON_3_14,
)
CLIENT_ARCHITECTURES = (lambda_.Architecture.ARM_64, lambda_.Architecture.X86_64)


class AdsAuthTokens(Construct):
    """Read access to the access tokens of one adsauth stack, and the client that reads them.

    >>> tokens = AdsAuthTokens.from_stack(self, "AdsAuthTokens", stack_name="AdsAuth")
    >>> tokens.grant_read_tokens(my_function)  # IAM, ADSAUTH_* variables, the client layer

    ``coordinates`` are deploy-time references to the SSM parameters the adsauth stack publishes
    (``adsauth.cdk.coordinates``): deploy that stack first, in the same account and region.
    """

    def __init__(self, scope: Construct, construct_id: str, *, coordinates: TokenCoordinates) -> None:
        super().__init__(scope, construct_id)
        self.coordinates = coordinates
        self._client_layer: lambda_.LayerVersion | None = None

    @classmethod
    def from_stack(cls, scope: Construct, construct_id: str, *, stack_name: str = "AdsAuth") -> "AdsAuthTokens":
        """The tokens of the deployed adsauth stack ``stack_name``, read from its SSM parameters
        when this stack deploys (no lookup, no credentials at synth)."""
        check_stack_name(stack_name)
        return cls(scope, construct_id, coordinates=read_coordinates(scope, stack_name))

    @property
    def client_layer(self) -> lambda_.LayerVersion:
        """``adsauth.client`` and the modules it imports, from the installed package, under
        ``python/`` (nothing else: no handler, no boto3, which the runtime has)."""
        if self._client_layer is None:
            self._client_layer = lambda_.LayerVersion(
                self,
                "ClientLayer",
                description="adsauth client (from adsauth.client import get_access_token)",
                code=client_layer_code(),
                compatible_runtimes=list(CLIENT_RUNTIMES),
                compatible_architectures=list(CLIENT_ARCHITECTURES),
            )
        return self._client_layer

    def grant_read_tokens(self, grantee: iam.IGrantable, *, add_client_layer: bool = True) -> iam.Grant:
        """Exactly what ``AdsAuthStack.grant_read_tokens`` grants in the adsauth app
        (``adsauth.cdk.grants``): read ``<prefix>access/*`` and decrypt it through Secrets Manager,
        GetItem and Query on the table and its profile index; nothing else. A ``lambda_.Function``
        also gets ``ADSAUTH_TABLE_NAME``, ``ADSAUTH_SECRET_PREFIX`` and ``ADSAUTH_LWA_CLIENT_ID``
        (what ``adsauth.client`` reads) and, unless ``add_client_layer=False`` (the function
        bundles adsauth itself), ``client_layer``."""
        c = self.coordinates
        grant = grant_token_reads(
            grantee, table_arn=c.table_arn, profile_index=c.profile_index, secret_prefix=c.secret_prefix,
            secrets_key_arn=c.secrets_key_arn,
        )
        if isinstance(grantee, lambda_.Function):
            for name, value in client_environment(c).items():
                grantee.add_environment(name, value)
            if add_client_layer:
                grantee.add_layers(self.client_layer)
        return grant


def client_environment(coordinates: TokenCoordinates) -> dict[str, str]:
    """The variables ``adsauth.client`` reads (``client.config_from_env``); none is a secret."""
    return {
        "ADSAUTH_TABLE_NAME": coordinates.table_name,
        "ADSAUTH_SECRET_PREFIX": coordinates.secret_prefix,
        "ADSAUTH_LWA_CLIENT_ID": coordinates.client_id,
    }
