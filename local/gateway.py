"""A local stand-in for Amazon API Gateway (REST API, v1, Lambda proxy integration).

``LocalGateway`` serves real HTTP on a local port, turns every request into the REST API proxy
event a deployed Lambda handler receives, calls the handler in-process and turns its proxy
response back into HTTP::

    routes = [
        Route("GET", "/connect/{invitation}", "adsauth.handlers.connect:handler"),
        Route("POST", "/admin/invitations", "adsauth.handlers.admin:handler", iam_auth=True),
    ]
    with LocalGateway(routes, credentials=("AKIDLOCAL", "secret")) as gateway:
        requests.get(gateway.base_url + "/connect/abc")

What it emulates, as API Gateway does it:

* URLs carry the stage as their first path segment (``http://127.0.0.1:PORT/local/...``), like
  ``https://{api}.execute-api.{region}.amazonaws.com/{stage}/...``; ``event["path"]`` is the path
  without the stage, still percent-encoded; ``pathParameters`` are decoded; query strings are
  decoded (``+`` and ``%XX``) with blank values kept.
* Routing picks the most specific resource (static segment > ``{param}`` > ``{proxy+}``), then the
  method (or ``ANY``). A known resource without the method answers 403 "Missing Authentication
  Token", as API Gateway does. (An unknown path answers 404 "Not Found".)
* ``iam_auth`` routes require a SigV4 ``Authorization`` header for the ``execute-api`` service,
  verified with botocore against ``credentials``; failures answer 403 with API Gateway's messages.
* Handler exceptions and malformed proxy responses answer 502 "Internal server error"; a handler
  still running after ``timeout`` seconds (29, API Gateway's integration limit) answers 504.
* Request bodies over ``max_body_bytes`` answer 413 without a handler call.

Not API Gateway: given ``openapi`` (a JSON document as bytes, e.g. ``docs/openapi.json``), the
gateway itself answers ``GET <base_url>/openapi.json`` with it, so that tools can read the API's
description where they reach the API.

Nothing here prints or logs a URL, a header value or an exception's arguments: URLs carry OAuth
codes and states, and exceptions may carry secrets. Only exception *types* are logged, to the
``local.gateway`` logger.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import hmac
import importlib
import json
import logging
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

__all__ = [
    "ACCOUNT_ID",
    "LOCAL_OPERATOR_ARN",
    "LambdaContext",
    "LocalGateway",
    "Route",
    "sign_request",
]

logger = logging.getLogger("local.gateway")

ACCOUNT_ID = "123456789012"
API_ID = "local"
LOCAL_OPERATOR_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/local-operator"
# The unique id IAM would give the local-operator user (users' ids start with AIDA).
LOCAL_OPERATOR_USER_ID = "AIDALOCALOPERATOR0001"
SERVICE = "execute-api"
DEFAULT_TIMEOUT_SECONDS = 29.0  # API Gateway's maximum integration timeout
SIGNATURE_WINDOW = _dt.timedelta(minutes=5)  # SigV4 clock skew API Gateway accepts

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 9110 header name
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})
_PROXY_RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# How many bytes beyond the limit an oversized body is read and thrown away, so that the client
# sees the 413 instead of a reset connection; beyond that the connection is simply closed.
_DRAIN_LIMIT = 16 * 1024 * 1024

_MSG_NOT_FOUND = "Not Found"
_MSG_MISSING_TOKEN = "Missing Authentication Token"
_MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_MSG_UNKNOWN_KEY = "The security token included in the request is invalid."
_MSG_INTERNAL = "Internal server error"
_MSG_TIMEOUT = "Endpoint request timed out"
_MSG_TOO_LARGE = "Request Too Long"


# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One API Gateway method: ``method`` on ``resource``, integrated with ``handler``.

    ``handler`` is ``"package.module:function"``, imported on first use. ``method`` may be
    ``"ANY"``. ``resource`` is an API Gateway resource path template: ``{name}`` matches one
    segment, a final ``{name+}`` one or more.
    """

    method: str
    resource: str
    handler: str
    iam_auth: bool = False
    # The function's own timeout (seconds); None: the gateway's. Lambda stops a function at its
    # timeout (API Gateway then answers 502), and the handler's context counts down to it.
    function_timeout: float | None = None


class LambdaContext:
    """The parts of the Lambda context object handlers (and Powertools) use."""

    function_version = "$LATEST"
    memory_limit_in_mb = 256
    identity = None
    client_context = None
    tenant_id = None

    def __init__(self, function_name: str, region: str, deadline: float) -> None:
        self.function_name = function_name
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        today = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream_name = f"{today}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = deadline  # time.monotonic() value

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"


def sign_request(
    method: str,
    url: str,
    body: bytes | str | None = b"",
    headers: Mapping[str, str] | None = None,
    credentials: tuple[str, str] | tuple[str, str, str] | Credentials | None = None,
    region: str = "us-east-1",
) -> dict[str, str]:
    """SigV4-sign a request for ``execute-api`` and return its headers (the given ones plus
    ``X-Amz-Date`` and ``Authorization``, and ``X-Amz-Security-Token`` for session credentials).

    Send exactly ``body`` (bytes; a str is UTF-8 encoded) to ``url`` with the returned headers.
    The URL is re-quoted the way ``requests`` quotes it before sending, so an unencoded URL still
    signs what goes on the wire.
    """
    creds = _as_credentials(credentials)
    if creds is None:
        raise ValueError("sign_request needs credentials: (access_key, secret_key)")
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode("utf-8")
    request = AWSRequest(method=method.upper(), url=_requote_url(url), data=body, headers=dict(headers or {}))
    SigV4Auth(creds, SERVICE, region).add_auth(request)
    return {name: value for name, value in request.headers.items()}


# --------------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------------


class LocalGateway:
    """Serve ``routes`` over HTTP the way an API Gateway REST API with Lambda proxy integrations
    would. ``start()`` (or ``with``) binds and serves on a background thread; ``base_url`` is
    ``http://HOST:PORT/<stage>``.

    ``invocations`` records every handler invocation as ``{"route": resource, "status": int}``
    (requests answered by the gateway itself - 404, 403, 413 - do not call a handler and are not
    recorded).
    """

    def __init__(
        self,
        routes: list[Route],
        *,
        stage: str = "local",
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: tuple[str, str] | None = None,
        region: str = "us-east-1",
        max_body_bytes: int = 10 * 1024 * 1024,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        openapi: bytes | None = None,
    ) -> None:
        if not stage or "/" in stage:
            raise ValueError("stage must be a single path segment")
        if credentials is not None and (len(credentials) != 2 or not all(credentials)):
            raise ValueError("credentials must be (access_key, secret_key)")
        self.stage = stage
        self.host = host
        self.port = port
        self.credentials = tuple(credentials) if credentials is not None else None
        self.region = region
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.openapi = openapi  # served at <base_url>/openapi.json when set
        self.routes = list(routes)
        self.invocations: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._resources = _compile_routes(self.routes)
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._import_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._deployment_id = _random_id(6)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "LocalGateway":
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _RequestHandler, self)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "LocalGateway":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/{self.stage}"

    # -- request handling --------------------------------------------------------------------

    def _serve(self, http: "_RequestHandler") -> None:
        started = time.monotonic()
        received = time.time()
        request_id = str(uuid.uuid4())
        method = http.command.upper()
        raw_path, _, raw_query = http.path.partition("?")
        raw_path = raw_path.split("#", 1)[0]
        if raw_path.startswith(("http://", "https://")):  # absolute-form request target
            raw_path = urlsplit(raw_path).path or "/"

        body = _read_body(http, self.max_body_bytes)
        if body is _BAD_REQUEST:
            http.close_connection = True
            return _send_json(http, 400, "Bad Request", request_id, "BadRequestException")
        if body is _TOO_LARGE:
            http.close_connection = True
            return _send_json(http, 413, _MSG_TOO_LARGE, request_id)
        assert isinstance(body, bytes)

        path = _strip_stage(raw_path, self.stage)
        if path is None:
            return _send_json(http, 404, _MSG_NOT_FOUND, request_id, "NotFoundException")
        if path == "/openapi.json" and self.openapi is not None and method in ("GET", "HEAD"):
            return _send(http, 200, [("Content-Type", "application/json"), ("Cache-Control", "no-cache")],
                         self.openapi)
        found = _find_resource(self._resources, path)
        if found is None:
            return _send_json(http, 404, _MSG_NOT_FOUND, request_id, "NotFoundException")
        resource, path_parameters = found
        route = resource.methods.get(method) or resource.methods.get("ANY")
        if route is None:
            return _send_json(http, 403, _MSG_MISSING_TOKEN, request_id, "MissingAuthenticationTokenException")

        identity: dict[str, Any] | None = None
        if route.iam_auth:
            outcome = self._authenticate(http, method, body)
            if isinstance(outcome, _Denied):
                return _send_json(http, 403, outcome.message, request_id, outcome.error_type)
            identity = outcome

        event = self._event(
            http, route, method, raw_path, path, raw_query, path_parameters, body, identity, request_id, received
        )
        budget = min(self.timeout, route.function_timeout or self.timeout)
        context = LambdaContext(_function_name(route.handler), self.region, started + budget)
        status, headers, payload = self._invoke(route, event, context, request_id)
        with self._lock:
            self.invocations.append({"route": route.resource, "status": status})
        _send(http, status, headers, payload)

    def _invoke(
        self, route: Route, event: dict[str, Any], context: LambdaContext, request_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            function = self._handler(route.handler)
        except Exception as exc:
            logger.error("cannot load handler %s for %s: %s", route.handler, route.resource, type(exc).__name__)
            return _json_response(502, _MSG_INTERNAL, request_id, "InternalServerErrorException")

        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = function(event, context)
            except BaseException as exc:  # noqa: BLE001 - any failure of the function is a 502
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"lambda:{context.function_name}", daemon=True)
        worker.start()
        worker.join(max(0.0, context.get_remaining_time_in_millis() / 1000))
        if worker.is_alive():
            logger.error("handler %s for %s timed out", route.handler, route.resource)
            if route.function_timeout is not None and route.function_timeout < self.timeout:
                # Lambda ended the function before API Gateway gave up on it
                return _json_response(502, _MSG_INTERNAL, request_id, "InternalServerErrorException")
            return _json_response(504, _MSG_TIMEOUT, request_id, "IntegrationTimeout")
        if "error" in outcome:
            logger.error(
                "handler %s for %s raised %s", route.handler, route.resource, type(outcome["error"]).__name__
            )
            return _json_response(502, _MSG_INTERNAL, request_id, "InternalServerErrorException")
        try:
            status, headers, payload = _proxy_response(outcome.get("result"))
        except _Malformed as exc:
            logger.error(
                "handler %s for %s returned a malformed proxy response: %s", route.handler, route.resource, exc
            )
            return _json_response(502, _MSG_INTERNAL, request_id, "InternalServerErrorException")
        names = {name.lower() for name, _ in headers}
        headers.append(("x-amzn-RequestId", request_id))
        if "date" not in names:
            headers.append(("Date", formatdate(usegmt=True)))
        return status, headers, payload

    def _handler(self, spec: str) -> Callable[..., Any]:
        function = self._handlers.get(spec)
        if function is not None:
            return function
        with self._import_lock:
            function = self._handlers.get(spec)
            if function is None:
                module_name, _, attribute = spec.partition(":")
                function = getattr(importlib.import_module(module_name), attribute)
                if not callable(function):
                    raise TypeError("handler is not callable")
                self._handlers[spec] = function
        return function

    def _authenticate(self, http: "_RequestHandler", method: str, body: bytes) -> dict[str, Any] | "_Denied":
        return _verify_sigv4(
            method=method,
            target=http.path,
            raw_headers=http.headers.items(),
            body=body,
            credentials=self.credentials,
            region=self.region,
            default_host=f"{self.host}:{self.port}",
        )

    def _event(
        self,
        http: "_RequestHandler",
        route: Route,
        method: str,
        raw_path: str,
        path: str,
        raw_query: str,
        path_parameters: dict[str, str],
        body: bytes,
        iam_identity: dict[str, Any] | None,
        request_id: str,
        received: float,
    ) -> dict[str, Any]:
        source_ip = http.client_address[0]
        headers = _HeaderList()
        for name, value in http.headers.items():
            headers.add(name, value)
        # What API Gateway adds in front of the integration.
        forwarded = headers.last("X-Forwarded-For")
        headers.set("X-Forwarded-For", f"{forwarded}, {source_ip}" if forwarded else source_ip)
        headers.set("X-Forwarded-Port", str(self.port))
        headers.set("X-Forwarded-Proto", "http")
        if headers.last("X-Amzn-Trace-Id") is None:
            headers.set("X-Amzn-Trace-Id", f"Root=1-{int(received):08x}-{secrets.token_hex(12)}")
        host = headers.last("Host") or f"{self.host}:{self.port}"

        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="replace") if raw_query else []
        multi_query: dict[str, list[str]] = {}
        for key, value in pairs:
            multi_query.setdefault(key, []).append(value)

        if body:
            try:
                event_body: str | None = body.decode("utf-8")
                is_base64 = False
            except UnicodeDecodeError:
                event_body = base64.b64encode(body).decode("ascii")
                is_base64 = True
        else:
            event_body, is_base64 = None, False

        identity: dict[str, Any] = {
            "cognitoIdentityPoolId": None,
            "accountId": None,
            "cognitoIdentityId": None,
            "caller": None,
            "sourceIp": source_ip,
            "principalOrgId": None,
            "accessKey": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": None,
            "userAgent": headers.last("User-Agent"),
            "user": None,
        }
        if iam_identity is not None:
            identity.update(iam_identity)

        event = {
            "resource": route.resource,
            "path": path,
            "httpMethod": method,
            "headers": headers.single() or None,
            "multiValueHeaders": headers.multi() or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": _resource_id(route.resource),
                "resourcePath": route.resource,
                "httpMethod": method,
                "extendedRequestId": base64.b64encode(secrets.token_bytes(10)).decode("ascii"),
                "requestTime": _request_time(received),
                "path": raw_path,
                "accountId": ACCOUNT_ID,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": host.split(".", 1)[0],
                "requestTimeEpoch": int(received * 1000),
                "requestId": request_id,
                "identity": identity,
                "domainName": host,
                "deploymentId": self._deployment_id,
                "apiId": API_ID,
            },
            "body": event_body,
            "isBase64Encoded": is_base64,
        }
        # A deployed function receives JSON: hand over exactly what a JSON round trip yields.
        return json.loads(json.dumps(event))


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type, gateway: LocalGateway) -> None:
        self.gateway = gateway
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close kept-alive connections so that a stopped gateway serves nothing more."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Never print tracebacks (they may quote request data); log the type only.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            logger.error("local gateway connection failed: %s", type(exc).__name__)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalGateway"
    sys_version = ""
    timeout = 60  # seconds a connection may sit idle or trickle a request
    server: _Server

    _sent = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silenced: request lines carry OAuth codes and states."""

    def handle_one_request(self) -> None:
        self._sent = False
        super().handle_one_request()

    def _dispatch(self) -> None:
        try:
            self.server.gateway._serve(self)
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True
        except Exception as exc:
            logger.error("local gateway failed on a request: %s", type(exc).__name__)
            self.close_connection = True
            if not self._sent:
                try:
                    _send_json(self, 500, _MSG_INTERNAL, str(uuid.uuid4()))
                except OSError:
                    pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_TOO_LARGE = _Sentinel("TOO_LARGE")
_BAD_REQUEST = _Sentinel("BAD_REQUEST")


def _read_body(http: _RequestHandler, limit: int) -> bytes | _Sentinel:
    encodings = http.headers.get_all("Transfer-Encoding") or []
    lengths = http.headers.get_all("Content-Length") or []
    if encodings:
        if lengths or [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
            return _BAD_REQUEST
        return _read_chunked(http, limit)
    if not lengths:
        return b""
    if len({v.strip() for v in lengths}) != 1 or not lengths[0].strip().isdigit():
        return _BAD_REQUEST
    length = int(lengths[0].strip())
    if length > limit:
        if length - limit <= _DRAIN_LIMIT:
            _discard(http, length)
        return _TOO_LARGE
    body = http.rfile.read(length)
    if len(body) < length:
        raise ConnectionError("request body truncated")
    return body


def _discard(http: _RequestHandler, length: int) -> None:
    while length > 0:
        chunk = http.rfile.read(min(length, 65536))
        if not chunk:
            return
        length -= len(chunk)


def _read_chunked(http: _RequestHandler, limit: int) -> bytes | _Sentinel:
    parts: list[bytes] = []
    total = 0
    while True:
        line = http.rfile.readline(1025)
        if not line.endswith(b"\n"):
            raise ConnectionError("bad chunk header")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return _BAD_REQUEST
        if size < 0:
            return _BAD_REQUEST
        if size == 0:
            break
        total += size
        if total > limit:
            return _TOO_LARGE  # connection is closed by the caller
        chunk = http.rfile.read(size)
        if len(chunk) < size or http.rfile.read(2) != b"\r\n":
            raise ConnectionError("bad chunk")
        parts.append(chunk)
    while True:  # trailers
        line = http.rfile.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
    return b"".join(parts)


def _json_response(
    status: int, message: str, request_id: str, error_type: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    payload = json.dumps({"message": message}, separators=(",", ":")).encode("utf-8")
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    headers.append(("Date", formatdate(usegmt=True)))
    return status, headers, payload


def _send_json(
    http: _RequestHandler, status: int, message: str, request_id: str, error_type: str | None = None
) -> None:
    _send(http, *_json_response(status, message, request_id, error_type))


def _send(http: _RequestHandler, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
    http._sent = True
    http.send_response_only(status)
    for name, value in headers:
        http.send_header(name, value)
    http.send_header("Content-Length", str(len(payload)))
    if http.close_connection:
        http.send_header("Connection", "close")
    http.end_headers()
    if http.command != "HEAD" and status >= 200 and status not in (204, 304):
        http.wfile.write(payload)
    http.wfile.flush()


class _HeaderList:
    """Request headers grouped case-insensitively, keeping the first spelling of each name."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, list[str]]] = {}

    def add(self, name: str, value: str) -> None:
        entry = self._entries.setdefault(name.lower(), (name, []))
        entry[1].append(value)

    def set(self, name: str, value: str) -> None:
        existing = self._entries.get(name.lower())
        self._entries[name.lower()] = (existing[0] if existing else name, [value])

    def last(self, name: str) -> str | None:
        entry = self._entries.get(name.lower())
        return entry[1][-1] if entry else None

    def single(self) -> dict[str, str]:
        return {name: values[-1] for name, values in self._entries.values()}

    def multi(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in self._entries.values()}


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------

_STATIC, _PARAM, _GREEDY = 0, 1, 2


@dataclass
class _Resource:
    template: str
    segments: list[tuple[int, str]]
    methods: dict[str, Route]

    @property
    def rank(self) -> tuple[int, ...]:
        return tuple(kind for kind, _ in self.segments)


def _compile_routes(routes: list[Route]) -> list[_Resource]:
    resources: dict[str, _Resource] = {}
    for route in routes:
        method = route.method.upper()
        if method != "ANY" and method not in _METHODS:
            raise ValueError(f"unsupported method {route.method!r}")
        module_name, colon, attribute = route.handler.partition(":")
        if not colon or not module_name or not attribute:
            raise ValueError(f"handler must be 'package.module:function', not {route.handler!r}")
        resource = resources.get(route.resource)
        if resource is None:
            resource = resources[route.resource] = _Resource(route.resource, _parse_template(route.resource), {})
        if method in resource.methods:
            raise ValueError(f"duplicate route {method} {route.resource}")
        resource.methods[method] = route
    return list(resources.values())


def _parse_template(template: str) -> list[tuple[int, str]]:
    if not template.startswith("/"):
        raise ValueError(f"resource must start with '/': {template!r}")
    if template == "/":
        return []
    segments: list[tuple[int, str]] = []
    parts = template[1:].split("/")
    for index, part in enumerate(parts):
        if not part:
            raise ValueError(f"empty segment in resource {template!r}")
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                if index != len(parts) - 1:
                    raise ValueError(f"a greedy parameter must be last: {template!r}")
                segments.append((_GREEDY, name[:-1]))
            else:
                segments.append((_PARAM, name))
            if not segments[-1][1]:
                raise ValueError(f"unnamed parameter in resource {template!r}")
        else:
            segments.append((_STATIC, part))
    return segments


def _strip_stage(raw_path: str, stage: str) -> str | None:
    prefix = "/" + stage
    if raw_path == prefix:
        return "/"
    if raw_path.startswith(prefix + "/"):
        return raw_path[len(prefix):]
    return None


def _find_resource(resources: list[_Resource], path: str) -> tuple[_Resource, dict[str, str]] | None:
    match_path = path[:-1] if len(path) > 1 and path.endswith("/") else path
    segments = [] if match_path == "/" else match_path[1:].split("/")
    best: tuple[_Resource, dict[str, str]] | None = None
    for resource in resources:
        params = _match(resource.segments, segments)
        if params is not None and (best is None or resource.rank < best[0].rank):
            best = (resource, params)
    return best


def _match(template: list[tuple[int, str]], segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, (kind, name) in enumerate(template):
        if kind == _GREEDY:
            rest = segments[index:]
            if not rest or not any(rest):
                return None
            params[name] = unquote("/".join(rest))
            return params
        if index >= len(segments) or not segments[index]:
            return None
        value = unquote(segments[index])
        if kind == _STATIC:
            if value != name:
                return None
        else:
            params[name] = value
    return params if len(segments) == len(template) else None


# --------------------------------------------------------------------------------------------
# IAM (SigV4) authorization
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Denied:
    message: str
    error_type: str


class _VerifyingSigV4Auth(SigV4Auth):
    """SigV4Auth that canonicalizes exactly the headers the client says it signed."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        selected = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                selected[name] = value
        return selected


def _verify_sigv4(
    *,
    method: str,
    target: str,
    raw_headers: list[tuple[str, str]],
    body: bytes,
    credentials: tuple[str, ...] | None,
    region: str,
    default_host: str,
) -> dict[str, Any] | _Denied:
    authorizations = [v for n, v in raw_headers if n.lower() == "authorization"]
    if not authorizations:
        return _Denied(_MSG_MISSING_TOKEN, "MissingAuthenticationTokenException")
    authorization = authorizations[-1].strip()
    algorithm, _, rest = authorization.partition(" ")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.strip().partition("=")
        if eq:
            fields[key.strip()] = value.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    lower_headers = [(n.lower(), v) for n, v in raw_headers]
    amz_dates = [v.strip() for n, v in lower_headers if n == "x-amz-date"]
    http_dates = [v.strip() for n, v in lower_headers if n == "date"]
    if not amz_dates and not http_dates:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if algorithm != "AWS4-HMAC-SHA256" or problems:
        if algorithm != "AWS4-HMAC-SHA256" and not problems:
            problems.append("Unsupported Authorization Type")
        return _Denied(" ".join(problems), "IncompleteSignatureException")

    timestamp = _signing_time(amz_dates[-1] if amz_dates else None, http_dates[-1] if http_dates else None)
    if timestamp is None:
        return _Denied("Date must be in ISO-8601 'basic format'.", "IncompleteSignatureException")

    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not scope[0]:
        return _Denied("Credential should be scoped to a valid region.", "IncompleteSignatureException")
    access_key, scope_date, scope_region, scope_service, terminator = scope
    if credentials is not None and not hmac.compare_digest(access_key, credentials[0]):
        return _Denied(_MSG_UNKNOWN_KEY, "UnrecognizedClientException")
    if scope_region != region:
        return _Denied(f"Credential should be scoped to a valid region, not '{scope_region}'.", "InvalidSignatureException")
    if scope_service != SERVICE:
        return _Denied(f"Credential should be scoped to correct service: '{SERVICE}'.", "InvalidSignatureException")
    if terminator != "aws4_request":
        return _Denied("Credential should be scoped with a valid terminator: 'aws4_request'.", "InvalidSignatureException")
    if scope_date != timestamp[:8]:
        return _Denied(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{timestamp[:8]}'.",
            "InvalidSignatureException",
        )
    signed_at = _dt.datetime.strptime(timestamp, _AMZ_DATE_FORMAT).replace(tzinfo=_dt.timezone.utc)
    now = _dt.datetime.now(_dt.timezone.utc)
    if signed_at < now - SIGNATURE_WINDOW:
        return _Denied(
            f"Signature expired: {timestamp} is now earlier than "
            f"{(now - SIGNATURE_WINDOW).strftime(_AMZ_DATE_FORMAT)} ({now.strftime(_AMZ_DATE_FORMAT)} - 5 min.)",
            "InvalidSignatureException",
        )
    if signed_at > now + SIGNATURE_WINDOW:
        return _Denied(
            f"Signature not yet current: {timestamp} is still later than "
            f"{(now + SIGNATURE_WINDOW).strftime(_AMZ_DATE_FORMAT)} ({now.strftime(_AMZ_DATE_FORMAT)} + 5 min.)",
            "InvalidSignatureException",
        )

    if credentials is not None:
        signed = [name.strip().lower() for name in fields["SignedHeaders"].split(";") if name.strip()]
        request = AWSRequest(method=method, url=None, data=body)
        for name, value in raw_headers:
            if name.lower() in signed:
                request.headers[name] = value
        host = request.headers.get("host") or default_host
        # The URL as the client addressed it (an absolute-form target already is one).
        request.url = f"http://{host}{target}" if target.startswith("/") else target
        request.context["timestamp"] = timestamp
        claimed_hash = request.headers.get("X-Amz-Content-SHA256")
        if claimed_hash is not None and claimed_hash != hashlib.sha256(body).hexdigest():
            return _Denied(_MSG_BAD_SIGNATURE, "InvalidSignatureException")
        signer = _VerifyingSigV4Auth(Credentials(credentials[0], credentials[1]), SERVICE, region, signed)
        try:
            canonical = signer.canonical_request(request)
            expected = signer.signature(signer.string_to_sign(request, canonical), request)
        except Exception:  # a request botocore cannot canonicalize cannot match a signature
            return _Denied(_MSG_BAD_SIGNATURE, "InvalidSignatureException")
        if not hmac.compare_digest(expected, fields["Signature"]):
            return _Denied(_MSG_BAD_SIGNATURE, "InvalidSignatureException")

    return {
        "accountId": ACCOUNT_ID,
        "accessKey": access_key,
        "caller": LOCAL_OPERATOR_USER_ID,
        "user": LOCAL_OPERATOR_USER_ID,
        "userArn": LOCAL_OPERATOR_ARN,
    }


def _signing_time(amz_date: str | None, http_date: str | None) -> str | None:
    """The request's signing timestamp in SigV4's basic ISO-8601 format."""
    if amz_date is not None:
        try:
            _dt.datetime.strptime(amz_date, _AMZ_DATE_FORMAT)
        except ValueError:
            return None
        return amz_date
    try:
        parsed = parsedate_to_datetime(http_date or "")
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed.astimezone(_dt.timezone.utc).strftime(_AMZ_DATE_FORMAT)


def _as_credentials(credentials: Any) -> Credentials | None:
    if credentials is None or isinstance(credentials, Credentials):
        return credentials
    values = tuple(credentials)
    if len(values) not in (2, 3):
        raise ValueError("credentials must be (access_key, secret_key[, session_token])")
    return Credentials(*values)


def _requote_url(url: str) -> str:
    """Quote a URL the way ``requests`` does before sending it (a no-op for encoded URLs)."""
    parts = urlsplit(url)
    safe = "!#$%&'()*+,/:;=?@[]~"
    return urlunsplit(
        (parts.scheme, parts.netloc, quote(_unquote_unreserved(parts.path), safe=safe),
         quote(_unquote_unreserved(parts.query), safe=safe), parts.fragment)
    )


def _unquote_unreserved(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char.isascii() and (char.isalnum() or char in "-._~") else match.group(0)

    return re.sub(r"%([0-9A-Fa-f]{2})", replace, text)


# --------------------------------------------------------------------------------------------
# Lambda proxy response -> HTTP
# --------------------------------------------------------------------------------------------


class _Malformed(ValueError):
    """The handler's return value is not a valid REST API proxy response (API Gateway: 502)."""


def _proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    try:
        # The Lambda runtime serializes the return value as JSON; what cannot be, fails there.
        result = json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise _Malformed("not JSON-serializable") from exc
    if not isinstance(result, dict):
        raise _Malformed(f"a {type(result).__name__}, not an object")
    unexpected = sorted(set(result) - _PROXY_RESPONSE_KEYS)
    if unexpected:
        raise _Malformed(f"unexpected keys {unexpected}")

    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _Malformed("statusCode must be an integer from 100 to 599")

    merged: dict[str, tuple[str, list[str]]] = {}
    multi = result.get("multiValueHeaders")
    if multi is not None:
        if not isinstance(multi, dict):
            raise _Malformed("multiValueHeaders must be an object")
        for name, values in multi.items():
            if not isinstance(values, list):
                raise _Malformed("multiValueHeaders values must be lists")
            entry = merged.setdefault(name.lower(), (name, []))
            entry[1].extend(_header_value(name, v) for v in values)
    single = result.get("headers")
    if single is not None:
        if not isinstance(single, dict):
            raise _Malformed("headers must be an object")
        for name, value in single.items():
            text = _header_value(name, value)
            entry = merged.setdefault(name.lower(), (name, []))
            if text not in entry[1]:
                entry[1].append(text)
    headers: list[tuple[str, str]] = []
    for lower, (name, values) in merged.items():
        if lower in _HOP_BY_HOP:
            continue
        headers.extend((name, value) for value in values)
    if "content-type" not in merged:
        headers.append(("Content-Type", "application/json"))

    body = result.get("body")
    is_base64 = result.get("isBase64Encoded", False)
    if is_base64 is None:
        is_base64 = False
    if not isinstance(is_base64, bool):
        raise _Malformed("isBase64Encoded must be a boolean")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise _Malformed("body must be a string")
    elif is_base64:
        try:
            payload = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Malformed("body is not valid base64") from exc
    else:
        payload = body.encode("utf-8")
    return status, headers, payload


def _header_value(name: Any, value: Any) -> str:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise _Malformed("invalid header name")
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise _Malformed(f"header {name} has a non-string value")
    if any(c in value for c in "\r\n\0"):
        raise _Malformed(f"header {name} contains a line break")
    return value


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _function_name(handler: str) -> str:
    """``adsauth.handlers.connect:handler`` -> ``connect``; ``pkg.fixtures:echo`` -> ``fixtures-echo``."""
    module_name, _, attribute = handler.partition(":")
    base = module_name.rsplit(".", 1)[-1]
    name = base if attribute == "handler" else f"{base}-{attribute}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64]


def _resource_id(resource: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha256(resource.encode("utf-8")).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:6])


def _random_id(length: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _request_time(epoch: float) -> str:
    """``09/Apr/2015:12:34:56 +0000``, independent of the locale."""
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
