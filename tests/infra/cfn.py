"""Small readers for a synthesized CloudFormation template, so tests assert properties rather than
logical ids."""

from __future__ import annotations

from typing import Any, Iterator


def resources(cfn: dict, resource_type: str) -> dict[str, dict]:
    return {
        logical_id: resource
        for logical_id, resource in cfn["Resources"].items()
        if resource["Type"] == resource_type
    }


def only(cfn: dict, resource_type: str) -> tuple[str, dict]:
    found = resources(cfn, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def render(value: Any) -> str:
    """Flatten intrinsics into a readable string: Ref X → ${X}, GetAtt X.Y → ${X.Y}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (name, arg), = value.items()
        if name == "Ref":
            return "${" + arg + "}"
        if name == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
        if name == "Fn::ImportValue":  # a cross-stack reference, see exported_values
            return "${import:" + arg + "}"
        if name == "Fn::Join":
            separator, parts = arg
            return separator.join(render(part) for part in parts)
    raise AssertionError(f"cannot render {value!r}")


def exported_values(producer: dict) -> dict[str, str]:
    """``${import:<export name>}`` → the rendered value the producer template exports under it."""
    return {
        "${import:" + output["Export"]["Name"] + "}": render(output["Value"])
        for output in producer.get("Outputs", {}).values()
        if "Export" in output
    }


def render_imported(value: Any, producer: dict) -> str:
    """``render``, with each import replaced by what the producer exports (consumer stacks)."""
    text = render(value)
    for imported, exported in exported_values(producer).items():
        text = text.replace(imported, exported)
    return text


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def walk(value: Any) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair in a JSON document, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def functions_by_handler(cfn: dict) -> dict[str, dict]:
    """The functions that serve adsauth (and the example consumer's) by handler. Not included:
    the deploy-time custom resource of ``api_cloudwatch_role: "auto"``
    (tests/infra/test_deploy_safety.py covers it)."""
    from infra.account_logging import SETTER_DESCRIPTION

    return {
        fn["Properties"]["Handler"]: fn
        for fn in resources(cfn, "AWS::Lambda::Function").values()
        if fn["Properties"].get("Description") != SETTER_DESCRIPTION
    }


def role_of(function: dict) -> str:
    role = function["Properties"]["Role"]["Fn::GetAtt"]
    assert role[1] == "Arn"
    return role[0]


def role_statements(cfn: dict) -> dict[str, list[dict]]:
    """Every IAM statement attached to each role, inline or through an AWS::IAM::Policy."""
    statements: dict[str, list[dict]] = {role_id: [] for role_id in resources(cfn, "AWS::IAM::Role")}
    for role_id, role in resources(cfn, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements[role_id].extend(policy["PolicyDocument"]["Statement"])
    for policy in resources(cfn, "AWS::IAM::Policy").values():
        for role_ref in policy["Properties"].get("Roles", []):
            statements[role_ref["Ref"]].extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def all_statements(cfn: dict) -> Iterator[dict]:
    for statements in role_statements(cfn).values():
        yield from statements
    for policy in resources(cfn, "AWS::IAM::ManagedPolicy").values():
        yield from policy["Properties"]["PolicyDocument"]["Statement"]


def actions(statement: dict) -> list[str]:
    return as_list(statement["Action"])


def api_routes(cfn: dict) -> dict[tuple[str, str], dict]:
    """(HTTP method, path) → method properties, paths rebuilt from the resource tree."""
    api_resources = resources(cfn, "AWS::ApiGateway::Resource")

    def path_of(resource_ref: Any) -> str:
        if "Fn::GetAtt" in resource_ref:  # the API's root resource
            return ""
        resource = api_resources[resource_ref["Ref"]]["Properties"]
        return path_of(resource["ParentId"]) + "/" + resource["PathPart"]

    routes = {}
    for method in resources(cfn, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        if props["HttpMethod"] == "OPTIONS":
            continue
        routes[(props["HttpMethod"], path_of(props["ResourceId"]) or "/")] = props
    return routes
