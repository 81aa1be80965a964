"""What no role may do, and what the deployed code does that the local stack cannot show.

``FORBIDDEN``: each row must be DENIED by the simulator, against the synthesized policies and the
resource policies (the client secret's, the readers-only policy of refresh-token secrets, packs'
included, the key policy). ``outsider`` is any other role of the account, given every Secrets
Manager and KMS action on ``*`` by its identity policy: the resource policies alone must keep it
out.

``DEPLOYED_ONLY``: calls the deployed functions make that the local stack (no KMS key, no
``REFRESH_SECRET_READERS``) or the suite never makes; they must be ALLOWED like recorded calls.
``ses:`` rows are evaluated against the ``ses_sender`` variant of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from adsauth.adapters.refresh_items import PLATFORM_KEY


@dataclass(frozen=True)
class Row:
    function: str  # connect, callback, dispatcher, worker, consumer, outsider
    action: str  # "secretsmanager:GetSecretValue", "dynamodb:PutItem" …
    target: str  # "client", "refresh:<advertiser>", "access:<advertiser>", "refresh:packs/<pack>",
    # "access:packs/<pack>", "table", "index:<name>"
    leading_keys: tuple[str, ...] = ()
    version_id: bool = False  # GetSecretValue with a VersionId
    why: str = ""


SECRETS = ("client", "refresh:adv-1", "access:adv-1")
PACKS = ("refresh:packs/p1", "access:packs/p1")  # a pack's two secrets (adsauth.packs)
PAUSE = PLATFORM_KEY["pk"]
LEASE = "PLATFORM#dispatch"  # adapters.refresh_items.DISPATCH_LEASE_KEY (a literal: the table names it so)

FORBIDDEN: tuple[Row, ...] = (
    # downstream reads access tokens, never a refresh token or the client secret
    Row("consumer", "secretsmanager:GetSecretValue", "refresh:adv-1", why="downstream → a refresh token"),
    Row("consumer", "secretsmanager:GetSecretValue", "client", why="downstream → the client secret"),
    Row("consumer", "kms:Decrypt", "refresh:adv-1", why="downstream → decrypt a refresh token"),
    Row("consumer", "secretsmanager:PutSecretValue", "access:adv-1", why="downstream → write a token"),
    Row("consumer", "dynamodb:PutItem", "table", ("ADV#adv-1",), why="downstream → a table write"),
    Row("consumer", "dynamodb:Scan", "table", why="downstream → a scan"),
    Row("consumer", "secretsmanager:GetSecretValue", "refresh:packs/p1", why="downstream → a pack's refresh tokens"),
    # connect and dispatcher: no secret at all, a pack's neither
    *(Row(fn, "secretsmanager:GetSecretValue", target, why=f"{fn} → a secret")
      for fn in ("connect", "dispatcher") for target in SECRETS + PACKS),
    *(Row(fn, "secretsmanager:PutSecretValue", "refresh:adv-1", why=f"{fn} → write a secret")
      for fn in ("connect", "dispatcher")),
    *(Row(fn, "kms:Decrypt", target, why=f"{fn} → decrypt a secret") for fn in ("connect", "dispatcher")
      for target in ("client", "refresh:adv-1")),
    # callback: never a current token; a replaced version by id is its undo path
    Row("callback", "secretsmanager:GetSecretValue", "access:adv-1", why="callback → an access token"),
    Row("callback", "secretsmanager:GetSecretValue", "refresh:adv-2", why="callback → another advertiser's refresh token"),
    Row("callback", "secretsmanager:UpdateSecret", "refresh:adv-1", why="callback → change a secret"),
    # callback: no pack at all (only the refresher writes one), though its grants on an
    # advertiser's own secrets would match a pack's name
    *(Row("callback", f"secretsmanager:{api}", target, why=f"callback → {api} on a pack")
      for api in ("GetSecretValue", "PutSecretValue", "CreateSecret", "DeleteSecret") for target in PACKS),
    Row("callback", "secretsmanager:GetSecretValue", "refresh:packs/p1", version_id=True,
        why="callback → a pack's refresh tokens, by version id"),
    Row("callback", "secretsmanager:PutResourcePolicy", "refresh:packs/p1", why="callback → a pack's readers"),
    Row("callback", "dynamodb:PutItem", "table", (PAUSE,), why="callback → pause every refresh"),
    Row("callback", "dynamodb:Scan", "table", why="callback → a scan"),
    # connect: only its invitation, its state, the advertiser's generation check
    Row("connect", "dynamodb:PutItem", "table", (PAUSE,), why="connect → pause every refresh"),
    Row("connect", "dynamodb:PutItem", "table", (LEASE,), why="connect → take the dispatch lease"),
    Row("connect", "dynamodb:UpdateItem", "table", ("ADV#adv-1",), why="connect → change an advertiser"),
    Row("connect", "dynamodb:DeleteItem", "table", ("INVITE#abc",), why="connect → delete an invitation"),
    Row("connect", "dynamodb:BatchWriteItem", "table", ("STATE#abc",), why="connect → a batch write"),
    Row("connect", "dynamodb:GetItem", "table", ("STATE#abc",), why="connect → read a state"),
    Row("connect", "dynamodb:Scan", "table", why="connect → a scan"),
    Row("connect", "dynamodb:Query", "index:byKind", ("ADVERTISER",), why="connect → list every advertiser"),
    # dispatcher: its lease, not the pause; the worker: the pause, not the lease
    Row("dispatcher", "dynamodb:PutItem", "table", (PAUSE,), why="dispatcher → pause every refresh"),
    Row("dispatcher", "dynamodb:PutItem", "table", ("ADV#adv-1",), why="dispatcher → replace an advertiser"),
    Row("dispatcher", "dynamodb:Scan", "table", why="dispatcher → a scan"),
    Row("worker", "dynamodb:PutItem", "table", (LEASE,), why="worker → take the dispatch lease"),
    # the worker: of access tokens only the packs' (an advertiser's own only by version id, below)
    Row("worker", "secretsmanager:GetSecretValue", "access:adv-1", why="worker → read an access token"),
    Row("worker", "secretsmanager:DeleteSecret", "client", why="worker → delete the client secret"),
    Row("worker", "secretsmanager:PutSecretValue", "client", why="worker → replace the client secret"),
    Row("worker", "secretsmanager:PutResourcePolicy", "access:packs/p1", why="worker → a policy on access tokens"),
    # e-mail (the ses_sender variant): the worker, from the configured address only
    Row("worker", "ses:SendEmail", "other", why="worker → e-mail from another address"),
    Row("callback", "ses:SendEmail", "from_address", why="callback → send e-mail"),
    Row("dispatcher", "ses:SendEmail", "from_address", why="dispatcher → send e-mail"),
    # anyone else: the resource policies keep the client secret and refresh tokens in
    Row("outsider", "secretsmanager:GetSecretValue", "client", why="another role → the client secret"),
    Row("outsider", "secretsmanager:GetSecretValue", "refresh:adv-1", why="another role → a refresh token"),
    Row("outsider", "secretsmanager:GetSecretValue", "refresh:packs/p1", why="another role → a pack's refresh tokens"),
)

DEPLOYED_ONLY: tuple[Row, ...] = (
    # the suite's re-consent e-mails go out through the CLI, not the worker: its own call, here
    Row("worker", "ses:SendEmail", "from_address", why="a re-consent invitation e-mail"),
    Row("callback", "secretsmanager:PutResourcePolicy", "refresh:adv-1", why="readers-only policy on a new grant"),
    Row("callback", "secretsmanager:GetSecretValue", "refresh:adv-1", version_id=True, why="undo: the replaced version"),
    Row("callback", "secretsmanager:GetSecretValue", "access:adv-1", version_id=True, why="undo: the replaced version"),
    # the worker creates refresh-token secrets too: a pack's, and an advertiser's own when it
    # leaves a pack (put_grant); it undoes a leaver's own secrets as the callback does a grant
    Row("worker", "secretsmanager:PutResourcePolicy", "refresh:packs/p1", why="readers-only policy on a new pack"),
    Row("worker", "secretsmanager:PutResourcePolicy", "refresh:adv-1", why="readers-only policy on a leaver's own"),
    *(Row("worker", "secretsmanager:GetSecretValue", target, version_id=True, why="undo a leaver's: the replaced version")
      for target in ("refresh:adv-1", "access:adv-1")),
    # the suite founds and empties packs and moves advertisers in and out of them through the
    # refresher outside a function (tests/stack_fixtures.py into_a_new_pack, migrate-layout), so
    # the worker's part of it is not recorded: a founded pack's two secrets (tagged), a joiner's
    # own secrets deleted, a leaver's own created (put_grant), an emptied pack's secrets and item
    *(Row("worker", f"secretsmanager:{api}", target, why=f"pack moves: {api}")
      for api in ("CreateSecret", "TagResource", "DeleteSecret") for target in SECRETS[1:] + PACKS),
    *(Row("worker", "secretsmanager:DescribeSecret", target, why="a leaver's own: the version it replaces")
      for target in SECRETS[1:]),
    Row("worker", "dynamodb:DeleteItem", "table", ("PACK#p1",), why="an emptied pack's item"),
)

# The outsider's identity policy: everything on secrets and keys.
OUTSIDER_ROLE = "arn:aws:iam::123456789012:role/some-team/AdministratorLike"
OUTSIDER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:*", "kms:*"], "Resource": "*"}],
}
