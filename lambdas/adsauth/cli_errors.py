"""How the ``adsauth`` command fails: one fixed line per failure, never a traceback.

``describe`` turns any exception into that line. Messages of AWS errors are never shown: they can
quote request parameters (an advertiser's e-mail, a secret name, a value); only the error code, the
operation and, for a connection failure, the endpoint are.
"""

from __future__ import annotations

from adsauth.errors import AdsAuthError
from adsauth.settings import SettingsError


class UsageError(Exception):
    """The command line or standard input is malformed (exit 2); the message is fixed."""


class NotConfirmed(AdsAuthError):
    code = "not_confirmed"
    message = "not confirmed; nothing changed"


class StackNotFound(AdsAuthError):
    code = "stack_not_found"


# ClientError codes whose usual cause the line can name
AWS_HINTS = {
    "AccessDenied": "the AWS credentials lack a permission",
    "AccessDeniedException": "the AWS credentials lack a permission",
    "UnrecognizedClientException": "the AWS credentials are not valid in this account or region",
    "InvalidClientTokenId": "the AWS credentials are not valid in this account or region",
    "ExpiredToken": "the AWS session expired: sign in again",
    "ExpiredTokenException": "the AWS session expired: sign in again",
    "ResourceNotFoundException": "check the region and TABLE_NAME, or pass --stack",
    "ProvisionedThroughputExceededException": "throttled by AWS: try again shortly",
    "ThrottlingException": "throttled by AWS: try again shortly",
}


def describe(exc: BaseException) -> str:
    """The one line (without ``error: ``) for a failure."""
    if isinstance(exc, AdsAuthError):  # fixed messages (see adsauth.errors)
        return str(exc)
    if isinstance(exc, SettingsError):
        return f"{exc} (set it, or pass --stack NAME)"
    aws = _describe_aws(exc)
    if aws is not None:
        return aws
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"a network call failed ({type(exc).__name__}); check the connection and try again"
    return f"unexpected {type(exc).__name__}; run again with --debug to see where"


def _describe_aws(exc: BaseException) -> str | None:
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - boto3 is the one dependency
        return None
    if isinstance(exc, bx.NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION, or a region in your AWS profile (AWS_PROFILE)"
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, bx.ProfileNotFound):
        return "the AWS profile named by AWS_PROFILE does not exist; `aws configure list-profiles` shows them"
    sso = tuple(getattr(bx, name) for name in ("SSOTokenLoadError", "TokenRetrievalError", "UnauthorizedSSOTokenError")
                if hasattr(bx, name))
    if sso and isinstance(exc, sso):
        return "the AWS SSO session is missing or expired: run `aws sso login`"
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                        bx.ConnectionClosedError)):
        endpoint = exc.kwargs.get("endpoint_url") or "the AWS endpoint"
        return f"cannot reach {endpoint} ({type(exc).__name__}): check the network, the region and AWS_ENDPOINT_URL"
    if isinstance(exc, bx.ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        hint = AWS_HINTS.get(code)
        return f"AWS refused {exc.operation_name} ({code})" + (f": {hint}" if hint else "")
    if isinstance(exc, bx.BotoCoreError):
        return f"the AWS SDK failed ({type(exc).__name__}); run again with --debug to see where"
    return None
