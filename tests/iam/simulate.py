"""Turns recorded calls and the forbidden table into IAM requests against the synthesized
policies, and asks the simulator (``simulate.mjs``, Node) for a verdict on each.

A recorded call is authorized the way AWS would authorize it once deployed:

- its own action on its resource, under the function's role (``aws:PrincipalArn`` = the role's
  ARN, path included), with the role's identity policies and the resource's policy (the client
  secret's from the template; a refresh-token secret's is the readers-only policy the vault puts
  on it, from the callback's ``REFRESH_SECRET_READERS``; the queue's and topic's TLS-only
  policies);
- for Secrets Manager, what the service asks KMS on the caller's behalf, under the same role:
  ``kms:Decrypt`` for a read, ``kms:GenerateDataKey`` for a write, with ``kms:ViaService`` and
  ``kms:EncryptionContext:SecretARN``, against the key policy; a ``CreateSecret`` with tags also
  needs ``secretsmanager:TagResource``.

A call whose resource has no counterpart in the template is denied (``unmapped``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from adsauth.adapters.vault import readers_only_policy
from local import stack as local

from tests.iam.forbidden import OUTSIDER_POLICY, OUTSIDER_ROLE, Row
from tests.iam.recorder import Call
from tests.iam.template import ACCOUNT, PARTITION, REGION, Function, Template, secret_arn, table_arn

# The deployed table and secret prefix go by these names in the suite: the local stack's, and
# those of tests/unit/test_client.py (the downstream client against its own in-process moto).
LOCAL_TABLES = frozenset({local.TABLE_NAME, "adsauth-client-test"})
LOCAL_SECRET_PREFIXES = (local.SECRET_PREFIX, "test/advertisers/")

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "simulate.mjs"
SIMULATOR = HERE / "node_modules" / "@cloud-copilot" / "iam-simulate"
VIA_SECRETS_MANAGER = f"secretsmanager.{REGION}.amazonaws.com"
SECRET_READS = ("GetSecretValue",)
SECRET_WRITES = ("PutSecretValue", "CreateSecret", "UpdateSecret")
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


@dataclass(frozen=True)
class Request:
    label: str  # "<function> <action> <resource>", what a failure says
    function: str
    action: str
    resource: str
    context: dict = field(default_factory=dict, hash=False, compare=False)
    resource_policy: dict | None = field(default=None, hash=False, compare=False)
    # two requests differing only in their context (a read with and without VersionId) are two
    context_key: str = field(default="", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_key", json.dumps(self.context, sort_keys=True))


class World:
    """One synthesized stack (and, for ``consumer``, the example consumer of it) as IAM sees it."""

    def __init__(self, template: Template, consumer: Template | None = None) -> None:
        self.template = template
        self.functions = template.functions()
        if consumer is not None:
            self.functions.update(consumer.functions())
        self.table = template.output("TableName")
        self.secret_prefix = template.output("SecretPrefix")
        client_id = template.only("AWS::SecretsManager::Secret")
        self.client_secret = template.ref(client_id)
        self.client_secret_policy = template.resource_policy("AWS::SecretsManager::ResourcePolicy", "SecretId", self.client_secret)
        self.key_arn, self.key_policy = template.key_policy()
        readers = self.functions["callback"].environment.get("REFRESH_SECRET_READERS", "")
        self.refresh_secret_policy = json.loads(readers_only_policy(readers.split(","))) if readers else None
        queues = template.of_type("AWS::SQS::Queue")
        (queue_id,) = [q for q, r in queues.items() if "RedrivePolicy" in r["Properties"]]
        self.queues = {local.REFRESH_QUEUE: template.get_att(queue_id, "Arn")}
        self.queue_urls = {template.get_att(queue_id, "Arn"): template.ref(queue_id)}
        self.topics = {local.ALERT_TOPIC: template.ref(template.only("AWS::SNS::Topic"))}
        self.buses = {local.EVENT_BUS: template.get_att(template.only("AWS::Events::EventBus"), "Arn")}
        self.outsider = Function("outsider", "", OUTSIDER_ROLE, (OUTSIDER_POLICY,), {})

    # --- names --------------------------------------------------------------------------------
    def secret(self, secret_id: str) -> tuple[str, dict | None] | None:
        """The deployed ARN of a local secret id (name or ARN) and its resource policy."""
        name = secret_id
        if name.startswith("arn:"):
            name = _ARN_SUFFIX.sub("", name.split(":secret:", 1)[1])
        if name == local.CLIENT_SECRET_NAME:
            return self.client_secret, self.client_secret_policy
        for prefix in LOCAL_SECRET_PREFIXES:
            if name.startswith(prefix + "refresh/"):
                return secret_arn(self.secret_prefix + name[len(prefix):]), self.refresh_secret_policy
            if name.startswith(prefix + "access/"):
                return secret_arn(self.secret_prefix + name[len(prefix):]), None
        return None

    def principal(self, function: str) -> Function:
        return self.outsider if function == "outsider" else self.functions[function]

    def _context(self, function: str, **extra) -> dict:
        return {"aws:PrincipalArn": self.principal(function).role_arn, "aws:PrincipalAccount": ACCOUNT,
                "aws:SecureTransport": "true", **extra}

    def _resource_policy(self, kind: str, prop: str, target: str) -> dict | None:
        return self.template.resource_policy(kind, prop, target)

    # --- requests -----------------------------------------------------------------------------
    def requests(self, call: Call) -> list[Request] | None:
        """What IAM authorizes for ``call``; None when its resource is not in the template."""
        if call.function not in self.functions:
            return None
        fn = call.function
        action = f"{call.service}:{call.action}"
        if call.service == "dynamodb":
            table, _, index = call.resource.partition("/index/")
            if table not in LOCAL_TABLES:
                return None
            arn = table_arn(self.table) + (f"/index/{index}" if index else "")
            context = self._context(fn, **({"dynamodb:LeadingKeys": list(call.leading_keys)} if call.leading_keys else {}))
            return [Request(f"{fn} {action} {arn} keys={list(call.leading_keys)}", fn, action, arn, context)]
        if call.service == "secretsmanager":
            found = self.secret(call.resource)
            if found is None:
                return None
            arn, policy = found
            return self.secret_requests(fn, call.action, arn, policy, call.flags)
        if call.service == "sqs":
            arn = self.queues.get(call.resource.rsplit("/", 1)[-1])
            if arn is None:
                return None
            policy = self._resource_policy("AWS::SQS::QueuePolicy", "Queues", self.queue_urls[arn])
            return [Request(f"{fn} {action} {arn}", fn, action, arn, self._context(fn), policy)]
        if call.service == "sns":
            arn = self.topics.get(call.resource.rsplit(":", 1)[-1])
            if arn is None:
                return None
            policy = self._resource_policy("AWS::SNS::TopicPolicy", "Topics", arn)
            return [Request(f"{fn} {action} {arn}", fn, action, arn, self._context(fn), policy)]
        if call.service == "events":
            arn = self.buses.get(call.resource.rsplit("/", 1)[-1])
            if arn is None:
                return None
            source = call.flags[0] if call.flags else ""
            return [Request(f"{fn} {action} {arn} source={source}", fn, action, arn,
                            self._context(fn, **{"events:source": source}))]
        if call.service == "ses":
            return self.ses_requests(call)
        return None

    def secret_requests(self, fn: str, api: str, arn: str, policy: dict | None, flags: tuple[str, ...] = ()) -> list[Request]:
        action = f"secretsmanager:{api}"
        extra = {}
        if "VersionId" in flags:
            extra["secretsmanager:VersionId"] = "version-id"
        if "VersionStage" in flags:
            extra["secretsmanager:VersionStage"] = "AWSCURRENT"
        version = " (a version by id)" if "VersionId" in flags else ""
        found = [Request(f"{fn} {action} {arn}{version}", fn, action, arn, self._context(fn, **extra), policy)]
        if api == "CreateSecret" and "Tags" in flags:
            found.append(Request(f"{fn} secretsmanager:TagResource {arn}", fn, "secretsmanager:TagResource", arn,
                                 self._context(fn), policy))
        if api in SECRET_READS:
            kms = ["kms:Decrypt"]
        elif api in SECRET_WRITES and (api != "UpdateSecret" or "SecretString" in flags):
            kms = ["kms:GenerateDataKey", "kms:Decrypt"]  # a write with a customer-managed key needs both
        else:
            kms = []
        context = self._context(fn, **{"kms:ViaService": VIA_SECRETS_MANAGER, "kms:CallerAccount": ACCOUNT,
                                       "kms:EncryptionContext:SecretARN": arn})
        for action in kms:
            found.append(Request(f"{fn} {action} (for {arn})", fn, action, self.key_arn, context, self.key_policy))
        return found

    def target_secret(self, target: str) -> tuple[str, dict | None]:
        kind, _, advertiser = target.partition(":")
        if kind == "client":
            return self.client_secret, self.client_secret_policy
        found = self.secret(f"{local.SECRET_PREFIX}{kind}/{advertiser}")
        assert found is not None, target
        return found

    def row_requests(self, row: Row, *, with_kms: bool) -> list[Request]:
        """A forbidden row (one request: the action itself) or a deployed-only one (with what
        Secrets Manager asks KMS, ``with_kms``)."""
        fn, service = row.function, row.action.split(":")[0]
        if service == "ses":
            found = self._send_email(fn, row.action.split(":", 1)[1], row.target)
            assert found is not None, f"{row.why}: the template sets no SES_FROM_ADDRESS"
            return found
        if service == "dynamodb":
            _, _, index = row.target.partition("index:")
            arn = table_arn(self.table) + (f"/index/{index}" if index else "")
            context = self._context(fn, **({"dynamodb:LeadingKeys": list(row.leading_keys)} if row.leading_keys else {}))
            return [Request(f"{fn} {row.action} {arn} keys={list(row.leading_keys)}", fn, row.action, arn, context)]
        arn, policy = self.target_secret(row.target)
        if row.action == "kms:Decrypt":
            context = self._context(fn, **{"kms:ViaService": VIA_SECRETS_MANAGER, "kms:CallerAccount": ACCOUNT,
                                           "kms:EncryptionContext:SecretARN": arn})
            return [Request(f"{fn} kms:Decrypt (for {arn})", fn, "kms:Decrypt", self.key_arn, context, self.key_policy)]
        api = row.action.split(":", 1)[1]
        found = self.secret_requests(fn, api, arn, policy, ("VersionId",) if row.version_id else ())
        return found if with_kms else found[:1]

    def ses_requests(self, call: Call) -> list[Request] | None:
        if call.source_role not in ("from_address", "sender"):
            return None  # sent from an address that is not the configured one
        return self._send_email(call.function, call.action, "from_address")

    def _send_email(self, fn: str, api: str, source: str) -> list[Request] | None:
        """``ses:SendEmail`` as deployed: Source is the function's ``SES_FROM_ADDRESS`` (or, for
        ``source="other"``, an address of another domain); SES authorizes it with the identity
        ops verified, here the address's domain."""
        env = self.functions["worker"].environment  # the one function configured to send
        address = env.get("SES_FROM_ADDRESS") or env.get("SES_SENDER", "")  # (before from-addresses: the sender)
        if "@" not in address:
            return None
        if source == "other":
            address = "someone@elsewhere.example"
        arn = f"arn:{PARTITION}:ses:{REGION}:{ACCOUNT}:identity/{address.rpartition('@')[2]}"
        action = f"ses:{api}"
        context = self._context(fn, **{"ses:FromAddress": address})
        return [Request(f"{fn} {action} {arn} from={address}", fn, action, arn, context)]


# --- the simulator --------------------------------------------------------------------------------
class SimulatorMissing(AssertionError):
    pass


def simulate(world_of: dict[Request, World]) -> dict[Request, str]:
    """The verdict on each request: Allowed, ExplicitlyDenied, ImplicitlyDenied or Error: …"""
    node = shutil.which("node")
    if node is None or not SIMULATOR.is_dir():
        raise SimulatorMissing(
            "the IAM simulator is not installed: run `make iam-simulator` (Node and npm; tests/iam/package.json)"
        )
    policies: dict[str, dict] = {}

    def named(document: dict) -> str:
        key = json.dumps(document, sort_keys=True)
        name = f"p{abs(hash(key))}"
        policies[name] = document
        return name

    requests = list(world_of)
    batch = []
    for i, request in enumerate(requests):
        world = world_of[request]
        principal = world.principal(request.function)
        identity = [named(doc) for doc in principal.identity_policies]
        batch.append({
            "id": i,
            "principal": principal.role_arn,
            "accountId": ACCOUNT,
            "action": request.action,
            "resource": request.resource,
            "context": request.context,
            "identity": identity,
            "resourcePolicy": named(request.resource_policy) if request.resource_policy else None,
        })
    done = subprocess.run(
        [node, str(SCRIPT)], input=json.dumps({"policies": policies, "requests": batch}), capture_output=True,
        text=True, cwd=HERE, timeout=600, check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the IAM simulator failed: {done.stderr[-2000:]}")
    verdicts = {}
    for answer in json.loads(done.stdout):
        result = answer["result"]
        if result == "Error":
            result = "Error: " + json.dumps(answer.get("errors"))[:500]
        verdicts[requests[answer["id"]]] = result
    return verdicts
