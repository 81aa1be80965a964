"""Records every AWS call each adsauth FUNCTION makes while the suite runs (a pytest plugin,
registered by ``tests/conftest.py``).

Who is calling: a context variable, set for the duration of each deployed handler
(``adsauth.handlers.<name>.handler``, wrapped when its module is imported, so the local gateway,
the local scheduler and tests calling a handler directly are all seen) and of the downstream
client's entry points (``adsauth.client``: the ``consumer``). Thread pools started inside a
handler (the worker's records, the callback's profile listings) inherit it:
``ThreadPoolExecutor.submit`` runs its work in a copy of the submitter's context. Nothing in ``lambdas/`` changes; the wrappers only
set the variable and call through.

What is called: a botocore ``before-call`` hook on every client created in the process (boto3
resources and Powertools' clients included), reading the serialized request, so one hook sees
what goes on the wire. Calls made outside a function (test set-up, the ops CLI, the local
scheduler's SQS event-source work, assertions) are counted as ``outside`` and not evaluated:
they are not a function's. Nor are calls that test or local-stack code makes while a function
runs (a test playing out a race from a hook, the ops CLI, a fault wrapper): any frame of
``tests/`` or ``local/`` (but the DynamoDB placeholder check every call passes through) or of the
CLI between the function and the SDK makes the call ``injected``, counted and not evaluated.

Each call becomes one or more :class:`Call` (action, local resource, context keys): a
``TransactWriteItems`` is one call per item (IAM authorizes each item's own action, a
``ConditionCheck`` as ``dynamodb:ConditionCheckItem``), and ``dynamodb:LeadingKeys`` holds the
partition-key values the request names (for a Query on an index, the index's partition key: the
only one the request carries). ``tests/iam/template.py`` maps the local names onto the template's.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import importlib.abc
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adsauth import schema

CLI_MODULES = ("cli.py", "__main__.py")  # infra.constants.CLI_MODULES: the ops CLI, not deployed

FUNCTIONS = ("connect", "callback", "dispatcher", "worker")
CONSUMER = "consumer"
# the downstream client's entry points (adsauth.client): what a consumer Lambda calls
CONSUMER_ENTRY_POINTS = ("get_access_token", "get_token_info", "advertiser_for_profile", "region_of_profile")
# partition key of the table and of each index
PARTITION_KEYS = {
    None: schema.PK,
    schema.PROFILE_INDEX: schema.PROFILE_INDEX_PK,
    schema.EXPIRY_INDEX: schema.EXPIRY_INDEX_PK,
    schema.KIND_INDEX: schema.KIND_INDEX_PK,
}
TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
# IAM actions whose name differs from the API operation
ACTION_NAMES = {("sqs", "SendMessageBatch"): "SendMessage", ("sqs", "DeleteMessageBatch"): "DeleteMessage"}

_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("adsauth_function", default=None)


@dataclass(frozen=True)
class Call:
    """One authorization IAM makes for a function's request, in local names."""

    function: str
    service: str  # the IAM prefix: dynamodb, secretsmanager, sqs …
    action: str  # without the prefix
    resource: str  # table (+ "/index/<name>"), secret id, queue URL, topic ARN, bus name, SES source
    leading_keys: tuple[str, ...] = ()  # dynamodb:LeadingKeys
    flags: tuple[str, ...] = ()  # secretsmanager: which of VersionId, VersionStage, Tags, SecretString it
    # sent; events: the entries' Source
    source_role: str = ""  # ses: Source is the configured from_address, the sender, or other

    def describe(self) -> str:
        keys = f" keys={list(self.leading_keys)}" if self.leading_keys else ""
        return f"{self.function} {self.service}:{self.action} {self.resource}{keys}"


@dataclass
class Recording:
    calls: dict[Call, int] = field(default_factory=dict)  # distinct call -> times made
    outside: int = 0  # calls not made by a function (set-up, CLI, scheduler, assertions)
    # made during a function's run by test or local-stack code (a race, a fault): "fn service:Op" -> times
    injected: dict[str, int] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)  # function requests the recorder cannot read
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, calls: list[Call]) -> None:
        with self.lock:
            for call in calls:
                self.calls[call] = self.calls.get(call, 0) + 1

    def functions(self) -> set[str]:
        return {c.function for c in self.calls}


RECORDING = Recording()


# --- who is calling ----------------------------------------------------------------------------
def _as(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        __adsauth_function_frame__ = True  # noqa: F841 - where _injected stops looking
        if _function.get() is not None:  # already inside a function (a consumer call in a handler)
            return fn(*args, **kwargs)
        token = _function.set(name)
        try:
            return fn(*args, **kwargs)
        finally:
            _function.reset(token)

    wrapper.__adsauth_recorded__ = True
    return wrapper


def _wrap_module(module) -> None:
    if module.__name__ == "adsauth.client":
        for entry in CONSUMER_ENTRY_POINTS:
            fn = getattr(module, entry)
            if not getattr(fn, "__adsauth_recorded__", False):
                setattr(module, entry, _as(CONSUMER, fn))
        return
    name = module.__name__.rsplit(".", 1)[-1]
    if not getattr(module.handler, "__adsauth_recorded__", False):
        module.handler = _as(name, module.handler)


WRAPPED_MODULES = {f"adsauth.handlers.{name}" for name in FUNCTIONS} | {"adsauth.client"}


class _WrappingLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        self.inner.exec_module(module)
        _wrap_module(module)


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Wraps the entry points when their module is imported, not before: a handler module
    reads its environment (Powertools' namespace …) at import, which the local stack sets later."""

    def find_spec(self, name, path, target=None):
        if name not in WRAPPED_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _WrappingLoader(spec.loader)
                return spec
        return None


def _wrap_entry_points() -> None:
    for name in WRAPPED_MODULES:
        if name in sys.modules:
            _wrap_module(sys.modules[name])
    if not any(isinstance(f, _WrapOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _WrapOnImport())


_original_submit = concurrent.futures.ThreadPoolExecutor.submit


def _submit_in_context(self, fn, /, *args, **kwargs):
    # the function's identity goes with its work to the pool's threads
    return _original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)


# --- what is called ----------------------------------------------------------------------------
def _body(request: dict) -> dict:
    body = request.get("body")
    if isinstance(body, dict):  # query protocol (SES, SNS)
        return body
    if not body:
        return {}
    return json.loads(body)


def _string(value: Any) -> str:
    """A DynamoDB attribute value as text ({"S": …} or {"N": …})."""
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value.values())))
    raise ValueError("not a scalar attribute value")


def _query_partition_values(params: dict) -> tuple[str, ...]:
    pk = PARTITION_KEYS.get(params.get("IndexName"))
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    expression = params.get("KeyConditionExpression", "")
    for name, placeholder in re.findall(r"(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)", expression):
        if names.get(name, name) == pk:
            return (_string(values[placeholder]),)
    raise ValueError("no partition-key equality in the key condition")


def _dynamodb_calls(function: str, operation: str, params: dict) -> list[Call]:
    def call(action: str, table: str, keys: tuple[str, ...]) -> Call:
        return Call(function, "dynamodb", action, table, tuple(sorted(set(keys))))

    if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        key = params.get("Key") or params["Item"]
        return [call(operation, params["TableName"], (_string(key[schema.PK]),))]
    if operation == "Query":
        table = params["TableName"] + (f"/index/{params['IndexName']}" if params.get("IndexName") else "")
        return [call("Query", table, _query_partition_values(params))]
    if operation == "Scan":
        table = params["TableName"] + (f"/index/{params['IndexName']}" if params.get("IndexName") else "")
        return [call("Scan", table, ())]
    if operation == "TransactWriteItems":
        calls = []
        for item in params["TransactItems"]:
            (kind, body), = item.items()
            key = body.get("Key") or body["Item"]
            calls.append(call(TRANSACT_ACTIONS[kind], body["TableName"], (_string(key[schema.PK]),)))
        return calls
    if operation == "TransactGetItems":
        return [call("GetItem", i["Get"]["TableName"], (_string(i["Get"]["Key"][schema.PK]),)) for i in params["TransactItems"]]
    if operation == "BatchWriteItem":
        calls = []
        for table, requests in params["RequestItems"].items():
            keys = []
            for request in requests:
                (kind, body), = request.items()
                keys.append(_string((body.get("Key") or body["Item"])[schema.PK]))
            calls.append(call("BatchWriteItem", table, tuple(keys)))
        return calls
    if operation == "BatchGetItem":
        return [
            call("BatchGetItem", table, tuple(_string(k[schema.PK]) for k in spec["Keys"]))
            for table, spec in params["RequestItems"].items()
        ]
    # anything else (DescribeTable, …): the table it names, no keys
    return [call(operation, params.get("TableName", "*"), ())]


def _calls(function: str, service: str, operation: str, params: dict) -> list[Call]:
    if service == "dynamodb":
        return _dynamodb_calls(function, operation, params)
    action = ACTION_NAMES.get((service, operation), operation)
    if service == "secretsmanager":
        flags = tuple(f for f in ("VersionId", "VersionStage", "Tags", "SecretString") if params.get(f))
        return [Call(function, service, action, params.get("SecretId") or params.get("Name") or "*", flags=flags)]
    if service == "sqs":
        return [Call(function, service, action, params.get("QueueUrl", "*"))]
    if service == "sns":
        return [Call(function, service, action, params.get("TopicArn", "*"))]
    if service == "events" and operation == "PutEvents":
        sent = {(e.get("EventBusName", "default"), e.get("Source", "")) for e in params.get("Entries", [])}
        return [Call(function, service, action, bus, flags=(source,)) for bus, source in sorted(sent)]
    if service in ("ses", "email"):
        source = params.get("Source", "")
        role = ("from_address" if source and source == os.environ.get("SES_FROM_ADDRESS")
                else "sender" if source and source == os.environ.get("SES_SENDER") else "other")
        return [Call(function, "ses", action, source or "*", source_role=role)]
    return [Call(function, service, action, "*")]


_REPO = Path(__file__).resolve().parents[2]
_HARNESS = (str(_REPO / "tests") + "/", str(_REPO / "local") + "/")
_NOT_DEPLOYED = tuple(str(_REPO / "lambdas" / "adsauth" / name) for name in CLI_MODULES) + (
    str(_REPO / "lambdas" / "adsauth" / "cli_"),
)
# harness code every SDK call passes through (not a caller): DynamoDB's placeholder check, this file
_PASS_THROUGH = (str(_REPO / "tests" / "dynamo_strict.py"), str(Path(__file__).resolve()))


def _injected() -> bool:
    """Whether test or local-stack code (a fault hook, a race a test plays out, the ops CLI)
    made this call from inside a function's run: then it is not the function's."""
    frame = sys._getframe(1)
    while frame is not None:
        if "__adsauth_function_frame__" in frame.f_locals:
            return False
        filename = frame.f_code.co_filename
        if filename.startswith(_NOT_DEPLOYED) or filename.startswith(_HARNESS) and filename not in _PASS_THROUGH:
            return True
        frame = frame.f_back
    return False


def _before_call(model, params, **_kwargs) -> None:
    function = _function.get()
    if function is not None and _injected():
        what = f"{function} {model.service_model.signing_name}:{model.name}"
        with RECORDING.lock:
            RECORDING.injected[what] = RECORDING.injected.get(what, 0) + 1
        return
    if function is None:
        with RECORDING.lock:
            RECORDING.outside += 1
        return
    service = model.service_model.signing_name
    try:
        calls = _calls(function, service, model.name, _body(params))
    except Exception as exc:  # noqa: BLE001 - a request the recorder cannot read fails the proof
        with RECORDING.lock:
            RECORDING.unparsed.append(f"{function} {service}:{model.name} ({type(exc).__name__})")
        return
    RECORDING.add(calls)


_original_create_client = None


def _install_hook() -> None:
    global _original_create_client
    import botocore.session

    if _original_create_client is not None:
        return
    _original_create_client = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):
        client = _original_create_client(self, *args, **kwargs)
        client.meta.events.register("before-call.*.*", _before_call, unique_id="adsauth-iam-recorder")
        return client

    botocore.session.Session.create_client = create_client


# --- the plugin --------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    _install_hook()
    concurrent.futures.ThreadPoolExecutor.submit = _submit_in_context  # type: ignore[method-assign]
    _wrap_entry_points()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from tests.iam.verdicts import iam_line

    line = iam_line()
    if line:
        terminalreporter.write_line(line)
