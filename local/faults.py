"""Reusable fault injection for the local stack, for tests and benchmarks.

Two kinds of fault, both switched on for a ``with`` block and always switched off at its end:

``aws_fault(operations, mode, times=…)``
    AWS calls of the handler code fail, through botocore's event system: a ``before-send`` handler
    answers the HTTP attempt itself instead of moto. It runs once per *attempt*, so botocore's own
    retries see the fault exactly as they would see AWS failing (``times=1`` is absorbed by a
    retry; ``times`` ≥ the client's ``max_attempts`` makes the call fail). Modes:

    - ``5xx``: HTTP 500, ``InternalServerError`` (DynamoDB) / ``InternalServiceError`` (others);
    - ``429``: throttling, as AWS sends it: HTTP 400 with ``ProvisionedThroughputExceededException``
      (DynamoDB) or ``ThrottlingException`` (others), which botocore retries by its code;
    - ``timeout``: ``botocore.exceptions.ReadTimeoutError`` (the request never reached AWS);
    - ``reset``: ``botocore.exceptions.ConnectionClosedError``;
    - ``latency``: the attempt is delayed by ``latency_s`` and then sent normally.

    ``when`` arms the fault only while it returns true (e.g. "after LwA issued a token"), and
    ``match`` narrows it to some requests (``table_named``, ``secret_prefixed``). The handler is
    registered on the emitters of the boto3 clients the handler code uses (``handler_emitters``:
    ``adsauth.wiring``'s session and its cached clients, the callback's idempotency client), or on
    the ``targets`` given. botocore copies a session's handlers into each client it creates, so a
    client created during the block may keep a copy of the handler after it: the handler then does
    nothing (``active`` is false), and ``adsauth.wiring.reset()`` drops such clients anyway.

``emulator_fault(emulator, endpoint, mode, …)``
    The LwA/Ads emulator's switches (``token`` / ``profiles`` × latency/429/5xx/timeout/late/reset,
    and ``refuse`` with an RFC 6749 §5.2 ``error`` on ``token``), cleared at the end of the block,
    with the emulator's timeout sleep set for the block. ``timeout`` never processes the request;
    ``late`` processes it (a code is used up) and answers after the sleep.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

AWS_MODES = frozenset({"5xx", "429", "timeout", "reset", "latency"})
SECRET_WRITES = ("secrets-manager.PutSecretValue", "secrets-manager.CreateSecret")
TABLE_WRITES = (
    "dynamodb.UpdateItem",
    "dynamodb.PutItem",
    "dynamodb.TransactWriteItems",
    "dynamodb.BatchWriteItem",
)

# (status, error code) per mode; DynamoDB names its errors differently from the other services
_ERRORS = {
    ("5xx", "dynamodb"): (500, "InternalServerError"),
    ("5xx", None): (500, "InternalServiceError"),
    ("429", "dynamodb"): (400, "ProvisionedThroughputExceededException"),
    ("429", None): (400, "ThrottlingException"),
}
_JSON_VERSIONS = {"dynamodb": "1.0"}


class _Body:
    """The ``raw`` of an ``AWSResponse``: what botocore reads the body from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.data


@dataclass
class AwsFault:
    """One injected fault; ``injected`` counts the failed attempts, ``calls`` every matching
    attempt seen while armed (operation names, in order)."""

    operations: tuple[str, ...]
    mode: str
    times: int | None = 1
    when: Callable[[], bool] | None = None
    match: Callable[[str, dict], bool] | None = None
    latency_s: float = 0.0
    active: bool = True
    injected: int = 0
    calls: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in AWS_MODES:
            raise ValueError(f"mode must be one of {sorted(AWS_MODES)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be positive or None (until the block ends)")
        for operation in self.operations:
            service, _, name = operation.partition(".")
            if not service or not name:
                raise ValueError(f"operations look like 'dynamodb.UpdateItem', not {operation!r}")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.injected >= self.times

    def __call__(self, request: Any, event_name: str, **_kwargs: Any) -> AWSResponse | None:
        operation = event_name.split(".", 1)[1]  # before-send.<service>.<Operation>
        if not self.active or (self.when is not None and not self.when()):
            return None
        if self.match is not None and not self.match(operation, _json_body(request)):
            return None
        with self._lock:
            self.calls.append(operation)
            if self.exhausted:
                return None
            self.injected += 1
        if self.mode == "latency":
            time.sleep(self.latency_s)
            return None
        if self.mode == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url, error="injected read timeout")
        if self.mode == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        service = operation.split(".")[0]
        status, code = _ERRORS.get((self.mode, service)) or _ERRORS[(self.mode, None)]
        body = json.dumps({"__type": code, "message": "injected fault"}).encode()
        headers = HeadersDict({
            "Content-Type": f"application/x-amz-json-{_JSON_VERSIONS.get(service, '1.1')}",
            "Content-Length": str(len(body)),
            "x-amzn-RequestId": str(uuid.uuid4()),
            "x-amzn-ErrorType": code,
        })
        return AWSResponse(request.url, status, headers, _Body(body))


def _json_body(request: Any) -> dict:
    body = getattr(request, "body", None)
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if not body or not isinstance(body, str):
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- request filters -------------------------------------------------------------------------------
def table_named(name: str) -> Callable[[str, dict], bool]:
    """DynamoDB requests that touch the table ``name`` (single item, transaction or batch)."""

    def match(_operation: str, body: dict) -> bool:
        if body.get("TableName") == name or name in (body.get("RequestItems") or {}):
            return True
        for entry in body.get("TransactItems") or []:
            if any(isinstance(v, dict) and v.get("TableName") == name for v in entry.values()):
                return True
        return False

    return match


def secret_prefixed(prefix: str) -> Callable[[str, dict], bool]:
    """Secrets Manager requests on secrets whose name starts with ``prefix``."""

    def match(_operation: str, body: dict) -> bool:
        return str(body.get("SecretId") or body.get("Name") or "").startswith(prefix)

    return match


# --- where the handler code's boto3 clients listen ---------------------------------------------------
def handler_emitters() -> list[Any]:
    """The event emitters of the boto3 clients the handler code uses, built first if needed:
    ``adsauth.wiring``'s session (for clients it creates later), the vault's and the table's
    clients, and the callback's idempotency client."""
    from adsauth import wiring

    emitters = [
        wiring.boto3_session().events,
        wiring.vault().client.meta.events,
        wiring.table().meta.client.meta.events,
    ]
    try:
        from adsauth.handlers import callback
    except ImportError:  # pragma: no cover - the callback handler ships with the package
        pass
    else:
        emitters.append(callback._idempotency()[0].client.meta.events)
    unique: list[Any] = []
    for emitter in emitters:
        if not any(emitter is seen for seen in unique):
            unique.append(emitter)
    return unique


@contextmanager
def aws_fault(
    operations: Iterable[str] | str,
    mode: str,
    *,
    times: int | None = 1,
    when: Callable[[], bool] | None = None,
    match: Callable[[str, dict], bool] | None = None,
    latency_s: float = 0.0,
    targets: Iterable[Any] | None = None,
) -> Iterator[AwsFault]:
    """Fail the first ``times`` matching attempts of ``operations`` (``"dynamodb.UpdateItem"``,
    ``TABLE_WRITES``, ``SECRET_WRITES`` …) while the block runs; see the module doc."""
    ops = (operations,) if isinstance(operations, str) else tuple(operations)
    fault = AwsFault(ops, mode, times=times, when=when, match=match, latency_s=latency_s)
    emitters = list(targets) if targets is not None else handler_emitters()
    unique_id = f"adsauth-fault-{uuid.uuid4().hex}"
    registered: list[tuple[Any, str]] = []
    try:
        for emitter in emitters:
            for operation in ops:
                event = f"before-send.{operation}"
                emitter.register(event, fault, unique_id=f"{unique_id}-{operation}")
                registered.append((emitter, event))
        yield fault
    finally:
        fault.active = False
        for emitter, event in registered:
            operation = event.split(".", 1)[1]
            emitter.unregister(event, unique_id=f"{unique_id}-{operation}")


@contextmanager
def emulator_fault(
    emulator: Any,
    endpoint: str,
    mode: str,
    *,
    region: str | None = None,
    times: int | None = 1,
    timeout_sleep_s: float | None = None,
    retry_after: int = 1,
    latency_ms: int = 0,
    error: str | None = None,
) -> Iterator[None]:
    """The emulator's fault switch for the block; its faults are cleared at the end."""
    saved = emulator.timeout_sleep_s
    if timeout_sleep_s is not None:
        emulator.timeout_sleep_s = timeout_sleep_s
    emulator.fault(endpoint, mode, region=region, times=times, retry_after=retry_after, latency_ms=latency_ms,
                   error=error)
    try:
        yield
    finally:
        emulator.clear_faults()
        emulator.timeout_sleep_s = saved


def token_issued(emulator: Any, grant_type: str) -> Callable[[], bool]:
    """A ``when`` for ``aws_fault``: true once the emulator answered a ``grant_type`` token
    request with 200 (counted from now), i.e. once LwA has issued tokens."""
    with emulator._lock:
        before = sum(1 for c in emulator.calls if _issued(c, grant_type))

    def armed() -> bool:
        with emulator._lock:
            return sum(1 for c in emulator.calls if _issued(c, grant_type)) > before

    return armed


def _issued(call: dict, grant_type: str) -> bool:
    return call["endpoint"] == "token" and call["grant_type"] == grant_type and call["status"] == 200
