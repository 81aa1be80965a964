"""The table, least privilege: each function gets the DynamoDB actions its code makes, each on
the items whose partition key it touches (``dynamodb:LeadingKeys``), and the Queries it makes,
per index. No function may scan. ``tests/iam`` proves the result by simulation against every call
the functions make in the test suite.

The patterns are derived from the key functions of the deployed code, so they cannot drift from
what it writes. Which function gets what is wired where the pieces meet (``infra.api``,
``infra.refresher``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from adsauth import schema
from adsauth.adapters.outbox import OUTBOX_KIND, outbox_key
from adsauth.adapters.refresh_items import DISPATCH_LEASE_KEY, PLATFORM_KEY
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam

# Partition-key patterns of the table's items (``dynamodb:LeadingKeys``)
LEADING_KEYS = "dynamodb:LeadingKeys"
ADVERTISER_ITEMS = schema.advertiser_key("*")[schema.PK]  # an advertiser, its profiles, its audit trail
INVITATION_ITEMS = schema.invitation_key("*")[schema.PK]
STATE_ITEMS = schema.state_key("*")[schema.PK]
OUTBOX_ITEMS = outbox_key("*")[schema.PK]
PLATFORM_PAUSE_ITEM = PLATFORM_KEY[schema.PK]  # LwA refused our client: every refresh waits
DISPATCH_LEASE_ITEM = DISPATCH_LEASE_KEY[schema.PK]  # the one dispatcher run that may queue
# Powertools idempotency records of the callback (handlers.callback: static_pk_value)
IDEMPOTENCY_ITEMS = "IDEMPOTENCY#onboarding"
PACK_ITEMS = "PACK#*"  # a pack's item (adsauth.packs) and the lobby of advertisers waiting to join
# ... and of the indexes, by their partition keys
PACKS = "PACK"  # byKind: the packs
DUE_SHARDS = "DUE#*"  # byExpiry (adapters.dynamo.expiry_shard)
PROFILE_ENTRIES = "PROFILE#*"  # byProfile
ALL_ADVERTISERS = schema.ADVERTISER_KIND  # byKind: every advertiser (the ops CLI only)
PENDING_EVENTS = OUTBOX_KIND  # byKind: the outbox, oldest first


def grant_items(
    table: dynamodb.ITable,
    grantee: iam.IGrantable,
    items: Mapping[str, Sequence[str]],
    *,
    queries: Mapping[str | None, Sequence[str]] | None = None,
) -> iam.Grant:
    """Item actions on the items whose partition key matches the given patterns, and
    Queries of the table (``None``) or of an index by the partition keys they name.

    ``items`` maps a DynamoDB action (``GetItem``, ``PutItem``, ``UpdateItem``,
    ``DeleteItem``, ``ConditionCheckItem``, ``BatchWriteItem``) to partition-key patterns
    (``ADVERTISER_ITEMS`` …); ``queries`` maps ``None`` or an index name to the patterns of
    the partition key it is queried by (for an index, what the code asks for; the grant names
    the index only). Each becomes a statement with
    ``ForAllValues:StringLike`` on ``dynamodb:LeadingKeys``: every partition key of the request
    (every item of a batch) must match. IAM authorizes each item of a TransactWriteItems by its
    own action (``ConditionCheck`` as ``dynamodb:ConditionCheckItem``), so transactions need
    nothing more; an index query is scoped by the index's ARN alone (see below).
    No Scan, no DescribeTable, no stream."""
    by_patterns: dict[tuple[str, ...], list[str]] = {}
    for action, patterns in items.items():
        by_patterns.setdefault(tuple(sorted(patterns)), []).append(f"dynamodb:{action}")
    grant: iam.Grant | None = None
    statements = [(actions, [table.table_arn], keys) for keys, actions in by_patterns.items()]
    for index, patterns in (queries or {}).items():
        if index is None:
            statements.append((["dynamodb:Query"], [table.table_arn], tuple(sorted(patterns))))
        else:
            # By the index's ARN only. The DynamoDB documentation defines LeadingKeys as the
            # table's partition key and does not say what IAM compares for a query on an index;
            # a wrong guess would deny the dispatcher's due query on a real account and stop
            # every refresh, while the patterns would add little: byExpiry holds only due
            # entries, and byKind's other kinds (advertisers, profiles, packs, the outbox) carry no secret.
            statements.append((["dynamodb:Query"], [f"{table.table_arn}/index/{index}"], None))
    for actions, arns, keys in statements:
        one = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=sorted(actions),
            resource_arns=arns,
            conditions={"ForAllValues:StringLike": {LEADING_KEYS: list(keys)}} if keys else None,
        )
        grant = one if grant is None else grant.combine(one)
    assert grant is not None, "grant_items needs at least one action"
    return grant
