"""A synthesized template as IAM sees it once deployed: every CloudFormation intrinsic (Ref,
Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::ImportValue, pseudo parameters, the SSM
parameters another stack publishes) resolved to the concrete value it would have in account
123456789012, us-east-1, partition aws.

Names CloudFormation would generate (a table, a queue, a role without a name) are
``<stack>-<logical id>``; a secret's ARN ends in ``-AbCdEf`` (Secrets Manager's six random
characters); a key's id is a UUID derived from its logical id.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
SECRET_SUFFIX = "-AbCdEf"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
}
_NO_VALUE = object()


def secret_arn(name: str) -> str:
    return f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}{SECRET_SUFFIX}"


def table_arn(name: str) -> str:
    return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


@dataclass(frozen=True)
class Function:
    name: str  # connect, callback, dispatcher, worker, consumer
    role_id: str
    role_arn: str
    identity_policies: tuple[dict, ...]
    environment: dict[str, str]

    def policy_bytes(self) -> int:
        """Size of the role's policy documents as IAM stores them (minified JSON)."""
        import json

        return sum(len(json.dumps(p, separators=(",", ":"))) for p in self.identity_policies)


class Template:
    def __init__(self, cfn: dict, stack_name: str, *, imports: dict[str, str] | None = None) -> None:
        self.cfn = cfn
        self.stack_name = stack_name
        self.resources: dict[str, dict] = cfn["Resources"]
        self.imports = imports or {}

    # --- intrinsics ------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, arg), = value.items()
            if name == "Ref":
                return self.ref(arg)
            if name == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(logical_id, attribute)
            if name == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.resolve(parts))
            if name == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                variables = {k: self.resolve(v) for k, v in variables.items()}
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub(m.group(1), variables)), text)
            if name == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if name == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if name == "Fn::ImportValue":
                return self.imports[self.resolve(arg)]
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not _NO_VALUE}

    def _sub(self, expression: str, variables: dict) -> Any:
        if expression in variables:
            return variables[expression]
        if "." in expression:
            logical_id, attribute = expression.split(".", 1)
            return self.get_att(logical_id, attribute)
        return self.ref(expression)

    def _name(self, logical_id: str, prop: str | None) -> str:
        props = self.resources[logical_id].get("Properties", {})
        if prop and prop in props:
            return str(self.resolve(props[prop]))
        return f"{self.stack_name}-{logical_id}"

    def ref(self, logical_id: str) -> Any:
        if logical_id == "AWS::NoValue":
            return _NO_VALUE
        if logical_id == "AWS::StackName":
            return self.stack_name
        if logical_id in PSEUDO:
            return PSEUDO[logical_id]
        if logical_id in self.cfn.get("Parameters", {}):
            parameter = self.cfn["Parameters"][logical_id]
            # a value another stack publishes in SSM (adsauth.cdk.coordinates), when it is known
            if parameter["Type"].startswith("AWS::SSM::Parameter::Value") and parameter.get("Default") in self.imports:
                return self.imports[parameter["Default"]]
            return f"parameter:{logical_id}"
        kind = self.resources[logical_id]["Type"]
        if kind == "AWS::SecretsManager::Secret":
            return secret_arn(self._name(logical_id, "Name"))
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self._name(logical_id, 'QueueName')}"
        if kind == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{self._name(logical_id, 'TopicName')}"
        if kind == "AWS::KMS::Key":
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack_name}/{logical_id}"))
        if kind == "AWS::Events::EventBus":
            return self._name(logical_id, "Name")
        if kind == "AWS::DynamoDB::Table":
            return self._name(logical_id, "TableName")
        if kind == "AWS::IAM::Role":
            return self._name(logical_id, "RoleName")[:64]
        if kind == "AWS::Logs::LogGroup":
            return self._name(logical_id, "LogGroupName")
        if kind == "AWS::Lambda::Function":
            return self._name(logical_id, "FunctionName")
        return f"{self.stack_name}-{logical_id}".lower()

    def get_att(self, logical_id: str, attribute: str) -> Any:
        kind = self.resources[logical_id]["Type"]
        base = f"arn:{PARTITION}"
        if attribute == "Arn":
            if kind == "AWS::DynamoDB::Table":
                return table_arn(self.ref(logical_id))
            if kind == "AWS::SQS::Queue":
                return f"{base}:sqs:{REGION}:{ACCOUNT}:{self._name(logical_id, 'QueueName')}"
            if kind == "AWS::KMS::Key":
                return f"{base}:kms:{REGION}:{ACCOUNT}:key/{self.ref(logical_id)}"
            if kind == "AWS::Events::EventBus":
                return f"{base}:events:{REGION}:{ACCOUNT}:event-bus/{self.ref(logical_id)}"
            if kind == "AWS::Logs::LogGroup":
                return f"{base}:logs:{REGION}:{ACCOUNT}:log-group:{self.ref(logical_id)}:*"
            if kind == "AWS::IAM::Role":
                path = self.resources[logical_id]["Properties"].get("Path", "/")
                return f"{base}:iam::{ACCOUNT}:role{path}{self.ref(logical_id)}"
            if kind == "AWS::Lambda::Function":
                return f"{base}:lambda:{REGION}:{ACCOUNT}:function:{self.ref(logical_id)}"
            if kind == "AWS::SNS::Topic":
                return self.ref(logical_id)
            return f"{base}:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{self.ref(logical_id)}"
        if attribute == "QueueName":
            return self._name(logical_id, "QueueName")
        if attribute in ("Name", "TopicName"):
            return self.ref(logical_id)
        return f"{logical_id}.{attribute}"

    # --- what IAM evaluates --------------------------------------------------------------------
    def of_type(self, kind: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def only(self, kind: str) -> str:
        (logical_id,) = self.of_type(kind)
        return logical_id

    def exports(self) -> dict[str, str]:
        """What this stack offers other stacks: its CloudFormation exports by export name, and its
        SSM String parameters by parameter name (a ``/…`` path, never an export name)."""
        exported = {
            self.resolve(o["Export"]["Name"]): self.resolve(o["Value"])
            for o in self.cfn.get("Outputs", {}).values()
            if "Export" in o
        }
        published = {
            self.resolve(r["Properties"]["Name"]): self.resolve(r["Properties"]["Value"])
            for r in self.of_type("AWS::SSM::Parameter").values()
            if r["Properties"].get("Type") == "String" and "Name" in r["Properties"]
        }
        return {**exported, **published}

    def output(self, name: str) -> str:
        return self.resolve(self.cfn["Outputs"][name]["Value"])

    def functions(self) -> dict[str, Function]:
        """Each adsauth function by its short name (the handler module; ``consumer`` for the
        example consumer), with its role's identity policies resolved."""
        found = {}
        for logical_id, fn in self.of_type("AWS::Lambda::Function").items():
            props = fn["Properties"]
            handler = props["Handler"]
            if handler.startswith("adsauth.handlers."):
                name = handler.split(".")[2]
            elif logical_id.startswith("Consumer"):  # the example consumer's inline handler
                name = "consumer"
            else:
                continue  # deploy-time helpers (custom resources): not a function of ours
            role_id = props["Role"]["Fn::GetAtt"][0]
            role = self.resources[role_id]["Properties"]
            assert not role.get("ManagedPolicyArns"), f"{name}: a managed policy cannot be simulated here"
            documents = [self.resolve(p["PolicyDocument"]) for p in role.get("Policies", [])]
            for policy in self.of_type("AWS::IAM::Policy").values():
                if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                    documents.append(self.resolve(policy["Properties"]["PolicyDocument"]))
            environment = self.resolve(props.get("Environment", {}).get("Variables", {}))
            found[name] = Function(name, role_id, self.get_att(role_id, "Arn"), tuple(documents), environment)
        return found

    def resource_policy(self, kind: str, target_property: str, target_arn: str) -> dict | None:
        """The resource policy (``AWS::SecretsManager::ResourcePolicy``, ``AWS::SQS::QueuePolicy``,
        ``AWS::SNS::TopicPolicy``) whose target resolves to ``target_arn``."""
        document_property = {"AWS::SecretsManager::ResourcePolicy": "ResourcePolicy"}.get(kind, "PolicyDocument")
        for policy in self.of_type(kind).values():
            targets = self.resolve(policy["Properties"][target_property])
            if target_arn in (targets if isinstance(targets, list) else [targets]):
                return self.resolve(policy["Properties"][document_property])
        return None

    def key_policy(self) -> tuple[str, dict]:
        key_id = self.only("AWS::KMS::Key")
        return self.get_att(key_id, "Arn"), self.resolve(self.resources[key_id]["Properties"]["KeyPolicy"])
