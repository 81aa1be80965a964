"""adsauth for other CDK apps (``pip install 'adsauth[cdk]'``): ``AdsAuthTokens`` grants a function
read access to a deployed adsauth stack's access tokens and gives it the ``adsauth.client`` layer.

Imports only the standard library, ``aws_cdk``, ``constructs`` (and ``cdk_nag`` when installed);
the deployed functions never import it.
"""

from __future__ import annotations

from adsauth.cdk.coordinates import (
    COORDINATES_VERSION,
    InvalidStackName,
    TokenCoordinates,
    parameter_names,
    publish_coordinates,
    read_coordinates,
)
from adsauth.cdk.grants import grant_token_reads, token_read_statements
from adsauth.cdk.tokens import AdsAuthTokens, client_environment

__all__ = [
    "COORDINATES_VERSION",
    "AdsAuthTokens",
    "InvalidStackName",
    "TokenCoordinates",
    "client_environment",
    "grant_token_reads",
    "parameter_names",
    "publish_coordinates",
    "read_coordinates",
    "token_read_statements",
]
