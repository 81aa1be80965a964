"""Names and defaults shared by the constructs: change them here, nowhere else."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

SERVICE_NAME = "adsauth"

# Powertools comes from the AWS-managed layer, never from the asset. Keep this equal to the pin in
# requirements.txt (a test checks it), and the runtime/architecture equal to the layer's.
POWERTOOLS_VERSION = "3.37.0"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_13
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_LAYER_PARAMETER = (
    f"/aws/service/powertools/python/arm64/python3.13/{POWERTOOLS_VERSION}"
)

# API Gateway gives up after 29 s; a function must answer (or fail) well before that.
API_FUNCTION_TIMEOUT = Duration.seconds(20)
FUNCTION_MEMORY_MB = 512
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# Stage-wide throttling. The browser flows and the ops token endpoint are low volume; these
# limits only keep a misbehaving client from running up Lambda and LwA calls.
API_THROTTLE_RATE_LIMIT = 50
API_THROTTLE_BURST_LIMIT = 100

CONNECT_HANDLER = "adsauth.handlers.connect.handler"
CALLBACK_HANDLER = "adsauth.handlers.callback.handler"

# Files of the adsauth package that are the ops CLI, not deployed code.
CLI_MODULES = frozenset({"cli.py", "__main__.py"})


def client_secret_name(stack_name: str) -> str:
    """Secrets Manager name of the LwA client ({"client_id", "client_secret"}), set by ops."""
    return f"{SERVICE_NAME}/{stack_name}/lwa_client"


def advertiser_secret_prefix(stack_name: str) -> str:
    """Prefix of the per-advertiser secrets: ``<prefix>refresh/<id>`` and ``<prefix>access/<id>``."""
    return f"{SERVICE_NAME}/{stack_name}/advertisers/"
