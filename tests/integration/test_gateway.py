"""The local API Gateway stand-in, exercised over real HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import time
import uuid

import pytest
import requests

from local.gateway import LocalGateway, Route, sign_request
from tests.integration.gateway_fixtures import BINARY

FIXTURES = "tests.integration.gateway_fixtures"
ACCESS_KEY = "AKIALOCALTEST0000001"
SECRET_KEY = "local-secret-key"
OPERATOR_ARN = "arn:aws:iam::123456789012:user/local-operator"

ROUTES = [
    Route("GET", "/connect/{invitation}", f"{FIXTURES}:echo"),
    Route("GET", "/callback", f"{FIXTURES}:echo"),
    Route("POST", "/token", f"{FIXTURES}:echo"),
    Route("GET", "/files/{proxy+}", f"{FIXTURES}:echo"),
    Route("GET", "/files/special", f"{FIXTURES}:redirect"),
    Route("GET", "/cookies", f"{FIXTURES}:cookies"),
    Route("GET", "/boom", f"{FIXTURES}:boom"),
    Route("GET", "/malformed", f"{FIXTURES}:malformed"),
    Route("GET", "/missing", "tests.integration.no_such_module:handler"),
    Route("GET", "/admin/advertisers", f"{FIXTURES}:echo", iam_auth=True),
    Route("POST", "/admin/advertisers", f"{FIXTURES}:echo", iam_auth=True),
]


@pytest.fixture(scope="module")
def gateway():
    with LocalGateway(ROUTES, credentials=(ACCESS_KEY, SECRET_KEY), max_body_bytes=4096) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _fresh_invocations(gateway):
    gateway.invocations.clear()


def _event(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()["event"]


def _raw(gateway: LocalGateway, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""):
    """Send a request with http.client (repeated headers, exact bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


# -- the event ---------------------------------------------------------------------------------


def test_base_url_has_the_stage_as_first_segment(gateway):
    assert gateway.base_url == f"http://127.0.0.1:{gateway.port}/local"


def test_path_parameters_are_decoded_and_path_keeps_its_encoding(gateway):
    before = int(time.time() * 1000)
    event = _event(requests.get(gateway.base_url + "/connect/a%20b%2Bc%2Fd"))
    assert event["resource"] == "/connect/{invitation}"
    assert event["path"] == "/connect/a%20b%2Bc%2Fd"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"invitation": "a b+c/d"}
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert "version" not in event
    context = event["requestContext"]
    assert context["resourcePath"] == "/connect/{invitation}"
    assert context["httpMethod"] == "GET"
    assert context["path"] == "/local/connect/a%20b%2Bc%2Fd"
    assert context["stage"] == "local"
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == "local"
    assert context["protocol"] == "HTTP/1.1"
    assert uuid.UUID(context["requestId"]).version == 4
    assert before <= context["requestTimeEpoch"] <= int(time.time() * 1000)
    assert context["requestTime"].endswith(" +0000")
    identity = context["identity"]
    assert identity["sourceIp"] == "127.0.0.1"
    assert identity["userAgent"].startswith("python-requests/")
    assert identity["userArn"] is None and identity["accessKey"] is None and identity["caller"] is None


def test_query_strings_are_decoded_like_api_gateway(gateway):
    url = gateway.base_url + "/callback?code=x+y%21&state=s1&scope=a&scope=b&blank=&flag"
    event = _event(requests.get(url))
    assert event["pathParameters"] is None
    assert event["multiValueQueryStringParameters"] == {
        "code": ["x y!"],
        "state": ["s1"],
        "scope": ["a", "b"],
        "blank": [""],
        "flag": [""],
    }
    assert event["queryStringParameters"] == {"code": "x y!", "state": "s1", "scope": "b", "blank": "", "flag": ""}


def test_headers_keep_their_case_and_all_values(gateway):
    status, _, body = _raw(
        gateway,
        "GET",
        "/local/callback",
        [("X-Custom-Header", "first"), ("X-Custom-Header", "second"), ("user-agent", "tester/1.0")],
    )
    assert status == 200
    event = json.loads(body)["event"]
    assert event["headers"]["X-Custom-Header"] == "second"
    assert event["multiValueHeaders"]["X-Custom-Header"] == ["first", "second"]
    assert event["headers"]["user-agent"] == "tester/1.0"
    assert event["headers"]["Host"] == f"127.0.0.1:{gateway.port}"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["requestContext"]["identity"]["userAgent"] == "tester/1.0"
    assert set(event["headers"]) == set(event["multiValueHeaders"])


def test_text_body_is_passed_as_a_string(gateway):
    payload = json.dumps({"grant_type": "refresh_token", "name": "Zoë"})
    event = _event(requests.post(gateway.base_url + "/token", data=payload.encode(), headers={"Content-Type": "application/json"}))
    assert event["body"] == payload
    assert event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == "application/json"


def test_binary_body_is_base64_encoded(gateway):
    raw = b"\xff\xfe\x00binary"
    event = _event(requests.post(gateway.base_url + "/token", data=raw))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_greedy_proxy_parameter_and_static_precedence(gateway):
    event = _event(requests.get(gateway.base_url + "/files/a/b%20c/d.txt"))
    assert event["resource"] == "/files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b c/d.txt"}
    special = requests.get(gateway.base_url + "/files/special", allow_redirects=False)
    assert special.status_code == 302
    assert special.headers["Location"] == "https://example.com/next"


def test_lambda_context(gateway):
    context = requests.get(gateway.base_url + "/callback").json()["context"]
    assert context["function_name"] == "gateway_fixtures-echo"
    assert context["memory_limit_in_mb"] == 256
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:gateway_fixtures-echo"
    assert uuid.UUID(context["aws_request_id"])
    assert 28_000 < context["remaining_ms"] <= 29_000


def test_invocations_are_recorded(gateway):
    requests.get(gateway.base_url + "/callback")
    requests.get(gateway.base_url + "/boom")
    requests.get(gateway.base_url + "/nowhere")
    assert gateway.invocations == [{"route": "/callback", "status": 200}, {"route": "/boom", "status": 502}]


# -- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/local/nowhere", "/local/connect", "/local/connect/a/b", "/other/callback", "/"])
def test_unknown_path_is_404(gateway, path):
    response = requests.get(f"http://127.0.0.1:{gateway.port}{path}")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert response.headers["Content-Type"] == "application/json"
    assert gateway.invocations == []


def test_known_path_with_wrong_method_is_403(gateway):
    response = requests.delete(gateway.base_url + "/callback")
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
    assert requests.post(gateway.base_url + "/callback", data=b"x").status_code == 403
    assert gateway.invocations == []


# -- IAM authorization -------------------------------------------------------------------------


def test_unsigned_request_to_iam_route_is_403(gateway):
    response = requests.get(gateway.base_url + "/admin/advertisers")
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
    assert gateway.invocations == []


def test_correctly_signed_request_is_accepted(gateway):
    url = gateway.base_url + "/admin/advertisers?status=active&q=a+b"
    headers = sign_request("GET", url, b"", {}, (ACCESS_KEY, SECRET_KEY), "us-east-1")
    assert headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "X-Amz-Date" in headers
    event = _event(requests.get(url, headers=headers))
    identity = event["requestContext"]["identity"]
    assert identity["userArn"] == OPERATOR_ARN
    assert identity["accessKey"] == ACCESS_KEY
    assert identity["caller"] and identity["user"]
    assert event["queryStringParameters"] == {"status": "active", "q": "a b"}
    assert gateway.invocations == [{"route": "/admin/advertisers", "status": 200}]


def test_signed_post_with_body_and_signed_content_type(gateway):
    url = gateway.base_url + "/admin/advertisers"
    body = json.dumps({"advertiserId": "adv-1"}).encode()
    headers = sign_request("POST", url, body, {"Content-Type": "application/json"}, (ACCESS_KEY, SECRET_KEY), "us-east-1")
    event = _event(requests.post(url, data=body, headers=headers))
    assert json.loads(event["body"]) == {"advertiserId": "adv-1"}
    assert event["requestContext"]["identity"]["userArn"] == OPERATOR_ARN


def test_tampered_body_is_rejected(gateway):
    url = gateway.base_url + "/admin/advertisers"
    headers = sign_request("POST", url, b'{"a":1}', {}, (ACCESS_KEY, SECRET_KEY), "us-east-1")
    response = requests.post(url, data=b'{"a":2}', headers=headers)
    assert response.status_code == 403
    assert response.json()["message"].startswith("The request signature we calculated does not match")


def test_wrong_secret_is_rejected(gateway):
    url = gateway.base_url + "/admin/advertisers"
    headers = sign_request("GET", url, b"", {}, (ACCESS_KEY, "not-the-secret"), "us-east-1")
    response = requests.get(url, headers=headers)
    assert response.status_code == 403
    assert response.json()["message"].startswith("The request signature we calculated does not match")
    assert gateway.invocations == []


def test_unknown_access_key_is_rejected(gateway):
    url = gateway.base_url + "/admin/advertisers"
    headers = sign_request("GET", url, b"", {}, ("AKIAUNKNOWN000000000", SECRET_KEY), "us-east-1")
    response = requests.get(url, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"message": "The security token included in the request is invalid."}


def test_wrong_region_and_malformed_headers_are_rejected(gateway):
    url = gateway.base_url + "/admin/advertisers"
    wrong_region = sign_request("GET", url, b"", {}, (ACCESS_KEY, SECRET_KEY), "eu-west-1")
    assert requests.get(url, headers=wrong_region).status_code == 403
    bearer = requests.get(url, headers={"Authorization": "Bearer abc"})
    assert bearer.status_code == 403
    assert "Credential" in bearer.json()["message"]
    assert gateway.invocations == []


def test_signature_covers_the_path(gateway):
    signed_for = gateway.base_url + "/admin/advertisers?status=active"
    headers = sign_request("GET", signed_for, b"", {}, (ACCESS_KEY, SECRET_KEY), "us-east-1")
    response = requests.get(gateway.base_url + "/admin/advertisers?status=deleted", headers=headers)
    assert response.status_code == 403


def test_without_configured_credentials_any_well_formed_signature_is_accepted():
    with LocalGateway(ROUTES, stage="dev") as gw:
        url = gw.base_url + "/admin/advertisers"
        assert requests.get(url).status_code == 403
        headers = sign_request("GET", url, b"", {}, ("AKIAANYONE0000000000", "whatever"), "us-east-1")
        event = _event(requests.get(url, headers=headers))
        assert event["requestContext"]["stage"] == "dev"
        assert event["requestContext"]["path"] == "/dev/admin/advertisers"
        assert event["requestContext"]["identity"]["accessKey"] == "AKIAANYONE0000000000"
        assert event["requestContext"]["identity"]["userArn"] == OPERATOR_ARN


# -- responses ---------------------------------------------------------------------------------


def test_multiple_set_cookie_and_base64_body(gateway):
    status, headers, body = _raw(gateway, "GET", "/local/cookies", [])
    assert status == 201
    cookies = [value for name, value in headers if name.lower() == "set-cookie"]
    assert cookies == ["a=1; Path=/; HttpOnly", "b=2; Path=/"]
    assert [v for n, v in headers if n == "X-Multi"] == ["x", "y"]
    assert [v for n, v in headers if n == "X-Single"] == ["one"]
    assert body == BINARY
    assert dict(headers)["Content-Length"] == str(len(BINARY))
    assert dict(headers)["Content-Type"] == "application/octet-stream"


def test_handler_exception_is_502_and_logs_only_the_type(gateway, caplog):
    with caplog.at_level(logging.ERROR, logger="local.gateway"):
        response = requests.get(gateway.base_url + "/boom?code=secret-code")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}
    assert "RuntimeError" in caplog.text
    assert "secret-value" not in caplog.text
    assert "secret-code" not in caplog.text


def test_malformed_proxy_response_is_502(gateway):
    response = requests.get(gateway.base_url + "/malformed")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_unimportable_handler_is_502(gateway):
    assert requests.get(gateway.base_url + "/missing").status_code == 502


def test_handler_timeout_is_504():
    with LocalGateway([Route("GET", "/slow", f"{FIXTURES}:slow")], timeout=0.2) as gw:
        started = time.monotonic()
        response = requests.get(gw.base_url + "/slow")
        assert time.monotonic() - started < 0.9
        assert response.status_code == 504
        assert response.json() == {"message": "Endpoint request timed out"}


# -- limits and robustness ---------------------------------------------------------------------


def test_oversized_body_is_413_without_a_handler_call(gateway):
    response = requests.post(gateway.base_url + "/token", data=b"x" * 5000)
    assert response.status_code == 413
    assert gateway.invocations == []
    assert requests.post(gateway.base_url + "/token", data=b"x" * 4096).status_code == 200


def test_oversized_chunked_body_is_413(gateway):
    response = requests.post(gateway.base_url + "/token", data=(b"x" * 1000 for _ in range(10)))
    assert response.status_code == 413
    assert gateway.invocations == []


def test_chunked_body_within_the_limit(gateway):
    event = _event(requests.post(gateway.base_url + "/token", data=(part for part in [b"ab", b"cd"])))
    assert event["body"] == "abcd"


def test_malformed_requests_do_not_kill_the_server(gateway):
    for garbage in (b"NONSENSE\r\n\r\n", b"GET /local/callback HTTP/1.1\r\nContent-Length: nope\r\n\r\n", b"\x00\xff" * 50):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
            raw.sendall(garbage)
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(4096):
                pass
    status, _, _ = _raw(gateway, "GET", "/local/callback", [("Content-Length", "-1")])
    assert status == 400
    assert requests.get(gateway.base_url + "/callback").status_code == 200


def test_keep_alive_session_and_concurrent_requests(gateway):
    from concurrent.futures import ThreadPoolExecutor

    with requests.Session() as session:
        assert [session.get(gateway.base_url + "/callback").status_code for _ in range(3)] == [200] * 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda i: requests.get(f"{gateway.base_url}/connect/{i}").status_code, range(16)))
    assert statuses == [200] * 16
    assert len(gateway.invocations) == 19


def test_request_lines_are_never_printed(gateway, capsys):
    requests.get(gateway.base_url + "/callback?code=oauth-code-123&state=st")
    requests.get(gateway.base_url + "/nowhere?code=oauth-code-123")
    captured = capsys.readouterr()
    assert "oauth-code-123" not in captured.out + captured.err


def test_stop_closes_the_port():
    gw = LocalGateway([Route("GET", "/callback", f"{FIXTURES}:echo")]).start()
    url = gw.base_url + "/callback"
    assert requests.get(url).status_code == 200
    gw.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_invalid_routes_are_refused():
    with pytest.raises(ValueError):
        LocalGateway([Route("GET", "callback", f"{FIXTURES}:echo")])
    with pytest.raises(ValueError):
        LocalGateway([Route("GET", "/x", "no_colon_here")])
    with pytest.raises(ValueError):
        LocalGateway([Route("GET", "/x", f"{FIXTURES}:echo"), Route("get", "/x", f"{FIXTURES}:echo")])


def test_a_function_timeout_below_the_gateways_is_the_handlers_budget_and_a_502():
    with LocalGateway([Route("GET", "/slow", f"{FIXTURES}:slow", function_timeout=0.2)], timeout=29) as gw:
        started = time.monotonic()
        response = requests.get(f"{gw.base_url}/slow", timeout=10)
        assert time.monotonic() - started < 5  # ended at the function's 0.2 s, not the gateway's 29
        assert response.status_code == 502
        assert response.json() == {"message": "Internal server error"}
