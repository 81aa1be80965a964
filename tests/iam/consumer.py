"""A downstream function of another CDK app (``adsauth.cdk.AdsAuthTokens``), as IAM sees it once
both stacks are deployed: what it must be allowed, what it must be denied. The rows use the names
of tests/iam/forbidden.py (``access:<advertiser>``, ``refresh:packs/<pack>``, ``index:<name>`` …)
and are evaluated by tests/infra/test_consumer_app.py against the consumer app's template, its SSM
parameters resolved to what the AdsAuth template publishes."""

from __future__ import annotations

from tests.iam.forbidden import Row
from tests.iam.simulate import VIA_SECRETS_MANAGER, Request, World
from tests.iam.template import ACCOUNT, secret_arn

ADV = ("ADV#adv-1",)
PROFILE = ("PROFILE#1234567890",)

ALLOWED: tuple[Row, ...] = (
    # an advertiser's own access token and a pack's (each read also asks KMS, via Secrets Manager)
    *(Row("consumer", f"secretsmanager:{api}", target, why=f"downstream → {api} {target}")
      for api in ("GetSecretValue", "DescribeSecret") for target in ("access:adv-1", "access:packs/p1")),
    Row("consumer", "dynamodb:GetItem", "table", ADV, why="downstream → the advertiser's item"),
    Row("consumer", "dynamodb:Query", "table", ADV, why="downstream → the advertiser's profiles"),
    Row("consumer", "dynamodb:Query", "index:byProfile", PROFILE, why="downstream → the advertiser of a profile"),
)

DENIED: tuple[Row, ...] = (
    *(Row("consumer", f"secretsmanager:{api}", target, why=f"downstream → {api} {target}")
      for api in ("GetSecretValue", "DescribeSecret")
      for target in ("refresh:adv-1", "refresh:packs/p1", "client")),
    *(Row("consumer", "kms:Decrypt", target, why=f"downstream → decrypt {target}")
      for target in ("refresh:adv-1", "refresh:packs/p1", "client")),
    *(Row("consumer", f"secretsmanager:{api}", target, why=f"downstream → {api} {target}")
      for api in ("PutSecretValue", "CreateSecret", "DeleteSecret", "UpdateSecret")
      for target in ("access:adv-1", "access:packs/p1")),
    *(Row("consumer", f"dynamodb:{api}", "table", ADV, why=f"downstream → {api}")
      for api in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")),
    Row("consumer", "dynamodb:Scan", "table", why="downstream → a scan"),
    *(Row("consumer", "dynamodb:Query", f"index:{index}", why=f"downstream → query {index}")
      for index in ("byExpiry", "byKind")),
)


def allowed_requests(world: World) -> dict[Request, Row]:
    return {r: row for row in ALLOWED for r in world.row_requests(row, with_kms=True)}


def denied_requests(world: World) -> dict[Request, str]:
    """The denied rows, and what no row can name: another stack's access token, and Decrypt of an
    access token outside Secrets Manager (no ``kms:ViaService``)."""
    found = {world.row_requests(row, with_kms=False)[0]: row.why for row in DENIED}
    other = secret_arn("adsauth/AdsAuthOther/advertisers/access/adv-1")
    found.update({r: "downstream → another stack's access token"
                  for r in world.secret_requests("consumer", "GetSecretValue", other, None)})
    access = world.target_secret("access:adv-1")[0]
    context = world._context("consumer", **{"kms:CallerAccount": ACCOUNT, "kms:EncryptionContext:SecretARN": access})
    found[Request(f"consumer kms:Decrypt (for {access}) outside Secrets Manager", "consumer", "kms:Decrypt",
                  world.key_arn, context, world.key_policy)] = "downstream → decrypt directly"
    assert VIA_SECRETS_MANAGER not in str(context)
    return found
