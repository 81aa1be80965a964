"""AWS list prices the cost model uses: us-east-1, on-demand, in US dollars, without free tiers.

As read 2026-11-23 from the AWS pricing pages (Secrets Manager, Lambda, DynamoDB, SQS, API
Gateway, KMS, CloudWatch, X-Ray, Systems Manager). Prices change: update them here, with the date.
"""

PRICES_READ_ON = "2026-11-23"
REGION = "us-east-1"

# Secrets Manager
SECRET_MONTH = 0.40  # per secret per month
SECRETS_API_CALL = 0.05 / 10_000

# Lambda, arm64 (Graviton)
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1_000_000

# DynamoDB, on-demand capacity, Standard table class
DYNAMODB_WRITE_REQUEST_UNIT = 0.625 / 1_000_000
DYNAMODB_READ_REQUEST_UNIT = 0.125 / 1_000_000
DYNAMODB_GB_MONTH = 0.25

# SQS, standard queue (a request is up to 10 messages of up to 64 KB)
SQS_REQUEST = 0.40 / 1_000_000

# API Gateway, REST API (first 333 million requests a month)
REST_API_REQUEST = 3.50 / 1_000_000

# KMS: customer managed key
KMS_KEY_MONTH = 1.00
KMS_REQUEST = 0.03 / 10_000

# CloudWatch
LOGS_INGESTED_GB = 0.50
LOGS_STORED_GB_MONTH = 0.03
ALARM_MONTH = 0.10  # standard resolution, one metric
DASHBOARD_MONTH = 3.00  # (the first three per account are free; not counted here)
CUSTOM_METRIC_MONTH = 0.30  # first 10,000 metrics

# X-Ray
XRAY_TRACE_RECORDED = 5.00 / 1_000_000

# SNS
SNS_PUBLISH = 0.50 / 1_000_000

# Systems Manager Parameter Store (for the cheaper storage designs)
SSM_STANDARD_PARAMETER_MONTH = 0.0  # up to 10,000 per account and region, values up to 4 KB
SSM_ADVANCED_PARAMETER_MONTH = 0.05
SSM_HIGHER_THROUGHPUT_CALL = 0.05 / 10_000  # only when higher throughput is turned on
