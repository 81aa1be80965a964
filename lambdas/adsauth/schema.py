"""The one DynamoDB table: its keys, indexes and item shapes.

Access patterns, none of them a scan:

| pattern                                   | key                                                   |
|-------------------------------------------|-------------------------------------------------------|
| advertiser by id                          | pk=ADV#<id>            sk=META                        |
| profiles of an advertiser                 | pk=ADV#<id>            sk begins_with PROFILE#        |
| advertiser by profile id                  | index byProfile: gsi1pk=PROFILE#<profileId>           |
| advertisers whose token expires before T  | index byExpiry: due_pk=DUE#<shard>, due_sk < T (ISO)  |
| all advertisers (ops listing)             | index byKind: kind_pk=ADVERTISER, kind_sk=<id>        |
| all profiles (ops listing's counts)       | index byKind: kind_pk=PROFILE,                        |
|                                           |   kind_sk=<advertiser id>#<region>#<profile id>       |
| invitation by its token                   | pk=INVITE#<sha256(token)> sk=INVITE                   |
| state by its value                        | pk=STATE#<sha256(state)>  sk=STATE                    |
| pack by id (lease, members, size)         | pk=PACK#<id>           sk=PACK                        |
| all packs (the dispatcher's admissions)   | index byKind: kind_pk=PACK, kind_sk=<id>              |

Invitation tokens and OAuth states are stored only as SHA-256 hashes: the table never holds a
value that could be replayed. ``ttl`` lets DynamoDB delete stale invitations and states; expiry is
always checked in code as well, because TTL deletion can lag by days.
"""

from __future__ import annotations

from typing import Any

PK = "pk"
SK = "sk"
TTL_ATTRIBUTE = "ttl"
PROFILE_INDEX = "byProfile"
PROFILE_INDEX_PK = "gsi1pk"
EXPIRY_INDEX = "byExpiry"
EXPIRY_INDEX_PK = "due_pk"
EXPIRY_INDEX_SK = "due_sk"
KIND_INDEX = "byKind"
KIND_INDEX_PK = "kind_pk"
KIND_INDEX_SK = "kind_sk"
ADVERTISER_KIND = "ADVERTISER"
PACK_KIND = "PACK"  # packed token secrets (``adsauth.packs``)
# Advertisers are spread over a few partitions of the expiry index so that thousands of them do
# not share one hot key; the refresher queries each shard.
EXPIRY_SHARDS = 4


def advertiser_key(advertiser_id: str) -> dict[str, str]:
    return {PK: f"ADV#{advertiser_id}", SK: "META"}


def profile_key(advertiser_id: str, region: str, profile_id: int) -> dict[str, str]:
    return {PK: f"ADV#{advertiser_id}", SK: f"PROFILE#{region}#{profile_id}"}


def invitation_key(token_hash: str) -> dict[str, str]:
    return {PK: f"INVITE#{token_hash}", SK: "INVITE"}


def state_key(state_hash: str) -> dict[str, str]:
    return {PK: f"STATE#{state_hash}", SK: "STATE"}


def pack_key(pack_id: str) -> dict[str, str]:
    return {PK: f"PACK#{pack_id}", SK: "PACK"}


def create_table_request(table_name: str) -> dict[str, Any]:
    """Arguments for boto3 ``create_table``: the local stack builds the same table as the CDK."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in (PK, SK, PROFILE_INDEX_PK, EXPIRY_INDEX_PK, EXPIRY_INDEX_SK, KIND_INDEX_PK, KIND_INDEX_SK)
        ],
        "KeySchema": [
            {"AttributeName": PK, "KeyType": "HASH"},
            {"AttributeName": SK, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": PROFILE_INDEX,
                "KeySchema": [{"AttributeName": PROFILE_INDEX_PK, "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": EXPIRY_INDEX,
                "KeySchema": [
                    {"AttributeName": EXPIRY_INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": EXPIRY_INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": KIND_INDEX,
                "KeySchema": [
                    {"AttributeName": KIND_INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": KIND_INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    }
