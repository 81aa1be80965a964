"""The OpenAPI 3 document of the adsauth API (``docs/openapi.json``), built from the handlers.

Powertools generates a document itself (``app.get_openapi_json_schema``) only when every route
function is annotated for its validation layer; ours return ``Response`` objects and read their
own input, so generating it that way would change the handlers. Instead the routes (method and
path) come from the handlers' Powertools resolvers, the body schema of ``POST /token`` is the
handler's own pydantic model, the statuses of the pages come from ``adsauth.pages`` and the
security headers from ``adsauth.pages.SECURITY_HEADERS``; the rest (parameters, responses) is
written here. ``tests/integration/test_fuzz.py`` checks that the document names exactly the
resolvers' routes and the local gateway's, that ``docs/openapi.json`` is current, and fuzzes the
live local API against it with schemathesis.

    python -m local.openapi            # rewrite docs/openapi.json
    python -m local.openapi --check    # exit 1 when docs/openapi.json is stale

The local gateway serves the document at ``<base_url>/openapi.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"

TOKENISH = r"^[A-Za-z0-9_-]{16,128}$"  # invitation tokens and states as the broker issues them
CODE = r"^[\x21-\x7e]{1,512}$"  # what the callback accepts as an authorization code
HTML = "text/html"
JSON = "application/json"
TEXT = "text/plain"
GATEWAY_REFUSALS = "answered by API Gateway itself, before any function runs"


def resolver_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the API functions' Powertools resolvers, in OpenAPI form."""
    from adsauth.handlers import callback, connect

    routes = []
    for app in (connect.app, callback.app):
        # Powertools keeps no public list of routes; these two lists are what it resolves against
        for route in [*app._static_routes, *app._dynamic_routes]:
            routes.append((route.method.upper(), route.openapi_path))
    return sorted(routes)


def document_routes(document: dict) -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, item in document["paths"].items() for method in item)


# --- pieces --------------------------------------------------------------------------------------
def _security_headers() -> dict[str, Any]:
    from adsauth.pages import SECURITY_HEADERS

    return {
        name: {"required": True, "description": "Set on every page and redirect.",
               "schema": {"type": "string", "enum": [value]}}
        for name, value in SECURITY_HEADERS.items()
    }


def _subclass_codes(base: type) -> list[str]:
    """The page keys of a family of domain errors (each error's ``code`` names its page)."""
    found, todo = set(), [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        found.add(cls.code)
    return sorted(found)


def _by_status(keys: list[str]) -> dict[int, list[str]]:
    from adsauth.pages import PAGES

    grouped: dict[int, list[str]] = {}
    for key in keys:
        grouped.setdefault(PAGES[key][0], []).append(key)
    return grouped


def _page(status: int, keys: list[str], *, gateway_json: bool = False) -> dict[str, Any]:
    """A fixed HTML page; ``gateway_json``: API Gateway may answer this status with JSON itself."""
    response: dict[str, Any] = {
        "description": f"A fixed page ({', '.join(keys)}); no request input is reflected.",
        "content": {HTML: {"schema": {"$ref": "#/components/schemas/Page"}}},
    }
    if gateway_json:
        response["description"] += f" Or JSON {GATEWAY_REFUSALS} (a path it cannot route)."
        response["content"][JSON] = {"schema": {"$ref": "#/components/schemas/GatewayError"}}
    else:
        response["headers"] = _security_headers()
    return response


def _pages(route_pages: dict[int, list[str]], gateway_json: tuple[int, ...] = ()) -> dict[str, Any]:
    return {str(status): _page(status, keys, gateway_json=status in gateway_json)
            for status, keys in sorted(route_pages.items())}


def _json_error(description: str, errors: list[str], *, gateway: bool = False, no_store: bool = True) -> dict:
    schema: dict[str, Any] = {"allOf": [{"$ref": "#/components/schemas/Error"},
                                        {"properties": {"error": {"enum": errors}}}]}
    if gateway:
        schema = {"oneOf": [schema, {"$ref": "#/components/schemas/GatewayError"}]}
        description += f" Or JSON {GATEWAY_REFUSALS}."
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if no_store:
        response["headers"] = {"Cache-Control": {"required": True, "schema": {"type": "string", "enum": ["no-store"]}}}
    return response


def _gateway_error(description: str) -> dict:
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/GatewayError"}}}}


def _redirect(description: str, location: dict, extra_headers: dict | None = None) -> dict:
    return {
        "description": description,
        "headers": {"Location": {"required": True, "schema": location}, **(extra_headers or {}),
                    **_security_headers()},
        "content": {TEXT: {"schema": {"type": "string", "maxLength": 0}}},
    }


def _query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _token_request_schema() -> dict:
    from adsauth.handlers.callback import TokenRequest

    def strip_titles(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip_titles(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
        return node

    schema = strip_titles(TokenRequest.model_json_schema())
    schema["description"] = "The manual (direct advertiser) flow: the code pasted from the browser bar."
    return schema


def _connection_schema() -> dict:
    from adsauth.models import AdvertiserStatus
    from adsauth.regions import Region

    regions = [r.value for r in Region]
    profile = {
        "type": "object",
        "required": ["profileId", "region", "countryCode", "currencyCode", "timezone", "marketplaceStringId",
                     "accountId", "accountType", "accountName", "status"],
        "properties": {
            "profileId": {"type": "integer", "format": "int64"},
            "region": {"type": "string", "enum": regions},
            "countryCode": {"type": "string"},
            "currencyCode": {"type": "string"},
            "timezone": {"type": "string"},
            "marketplaceStringId": {"type": "string"},
            "accountId": {"type": "string"},
            "accountType": {"type": "string"},
            "accountName": {"type": "string"},
            "status": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "required": ["advertiser", "profiles"],
        "description": "The connected advertiser and its profiles; never a token.",
        "properties": {
            "advertiser": {
                "type": "object",
                "required": ["id", "name", "status", "region", "tokenExpiresAt", "pendingRegions"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": [s.value for s in AdvertiserStatus]},
                    "region": {"type": "string", "enum": regions},
                    "tokenExpiresAt": {"type": "number", "nullable": True},
                    "pendingRegions": {"type": "array", "items": {"type": "string", "enum": regions}},
                },
            },
            "profiles": {"type": "array", "items": profile},
        },
    }


# --- the operations ------------------------------------------------------------------------------
def _connect() -> dict:
    from adsauth.errors import InvitationError
    from adsauth.pages import PAGES

    cookie = ("^__Host-adsauth-[0-9a-f]{16}=[A-Za-z0-9_-]{43,128}; "
              "(?=.*; Secure(;|$))(?=.*; HttpOnly(;|$))(?=.*; SameSite=Lax(;|$))(?=.*Path=/(;|$))(?!.*Domain=)")
    return {
        "operationId": "connect",
        "summary": "The emailed invitation link: starts an authorization at the region's LwA host.",
        "tags": ["advertiser"],
        "parameters": [{"name": "invitation", "in": "path", "required": True,
                        "description": "The invitation token from the link.",
                        "schema": {"type": "string", "pattern": TOKENISH}}],
        "responses": {
            "302": _redirect(
                "To the LwA authorize URL of the invitation's region (state, PKCE S256), with the "
                "browser-binding cookie.",
                {"type": "string", "pattern": r"/ap/oa\?"},
                {"Set-Cookie": {"required": True, "description": "__Host- cookie: Secure, HttpOnly, SameSite=Lax",
                                "schema": {"type": "string", "pattern": cookie}}},
            ),
            **_pages(_by_status([*(k for k in _subclass_codes(InvitationError) if k in PAGES), "server_error"]),
                     gateway_json=(404,)),
        },
    }


def _result() -> dict:
    from adsauth.pages import RESULT_PAGES

    return {
        "operationId": "result",
        "summary": "The fixed result pages the callback redirects to.",
        "tags": ["advertiser"],
        "parameters": [{"name": "outcome", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": sorted(RESULT_PAGES)}}],
        "responses": _pages(_by_status([*sorted(RESULT_PAGES), "not_found", "server_error"]), gateway_json=(404,)),
    }


def _callback() -> dict:
    from adsauth.errors import InvalidRequest, StateError

    keys = _by_status([*_subclass_codes(StateError), InvalidRequest.code, "in_progress", "server_error"])
    return {
        "operationId": "callback",
        "summary": "LwA's redirect back after Allow (code) or decline (error).",
        "description": "Checks the query, the state and its browser binding (the __Host- cookie) before "
                       "anything else, consumes the state, exchanges the code at the token endpoint paired "
                       "with the state's region, and answers 303 to a fixed result page.",
        "tags": ["advertiser"],
        "parameters": [
            _query("code", "The authorization code (on Allow).", {"type": "string", "pattern": CODE}),
            _query("state", "The state the broker issued.", {"type": "string", "pattern": TOKENISH}),
            _query("error", "RFC 6749 §4.1.2.1 error code (on decline); unknown codes are classified, "
                            "never echoed.", {"type": "string"}),
            _query("error_description", "Ignored: never stored, logged or shown.", {"type": "string"}),
            _query("scope", "The granted scope; ignored.", {"type": "string"}),
        ],
        "responses": {
            "303": _redirect("To the fixed result page of the outcome; no code or state in its URL.",
                             {"type": "string", "pattern": "/result/(connected|declined|retry|failed)$"}),
            **_pages(keys),
        },
    }


def _token() -> dict:
    return {
        "operationId": "token",
        "summary": "Manual flow for ops (IAM-signed): exchange a code pasted from the browser bar.",
        "tags": ["ops"],
        "security": [{"sigv4": []}],
        "requestBody": {"required": True,
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}},
        "responses": {
            "200": {"description": "Connected: the advertiser and its profiles, never a token.",
                    "headers": {"Cache-Control": {"required": True,
                                                  "schema": {"type": "string", "enum": ["no-store"]}}},
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Connection"}}}},
            "400": _json_error("The body is not a valid request, or LwA rejected the code.",
                               ["invalid_request", "invalid_grant"]),
            "403": _gateway_error(f"Unsigned or badly signed request ({GATEWAY_REFUSALS})."),
            "404": _json_error("No advertiser has this id.", ["advertiser_unknown"]),
            "409": _json_error("The code is being exchanged right now, or was exchanged for another request.",
                               ["in_progress", "code_already_used"]),
            "413": _json_error("The body is over 8 KiB.", ["invalid_request"], gateway=True, no_store=False),
            "500": _json_error("The LwA client secret is missing or wrong, or an unexpected error.",
                               ["client_misconfigured", "server_error"]),
            "502": _json_error("The exchange failed.", ["failed"], gateway=True, no_store=False),
            "503": _json_error("LwA did not answer.", ["lwa_unavailable"]),
        },
    }


OPERATIONS = {
    ("GET", "/connect/{invitation}"): _connect,
    ("GET", "/result/{outcome}"): _result,
    ("GET", "/callback"): _callback,
    ("POST", "/token"): _token,
}


def build() -> dict:
    routes = resolver_routes()
    missing = sorted(set(routes) - set(OPERATIONS))
    if missing:
        raise LookupError(f"routes without a description in local/openapi.py: {missing}")
    paths: dict[str, dict] = {}
    for method, path in routes:
        paths.setdefault(path, {})[method.lower()] = OPERATIONS[(method, path)]()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "adsauth",
            "version": "1.0.0",
            "description": "Authorization broker for the Amazon Ads API: advertisers connect through Login "
                           "with Amazon; ops exchange pasted codes. Every HTML page is fixed text chosen by "
                           "a key; no input is reflected.",
        },
        "servers": [{
            "url": "https://{api}.execute-api.{region}.amazonaws.com/{stage}",
            "variables": {"api": {"default": "abcdef1234"}, "region": {"default": "us-east-1"},
                          "stage": {"default": "prod"}},
        }],
        "paths": paths,
        "components": {
            "schemas": {
                "Page": {"type": "string", "description": "A fixed HTML page."},
                "Error": {"type": "object", "required": ["error", "message"], "additionalProperties": False,
                          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "GatewayError": {"type": "object", "required": ["message"], "additionalProperties": False,
                                 "properties": {"message": {"type": "string"}}},
                "TokenRequest": _token_request_schema(),
                "Connection": _connection_schema(),
            },
            "securitySchemes": {
                "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header",
                          "description": "AWS Signature Version 4 for the execute-api service (IAM).",
                          "x-amazon-apigateway-authtype": "awsSigv4"},
            },
        },
    }


def render(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.openapi", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the document is stale")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = DOCUMENT_PATH.read_text() if DOCUMENT_PATH.exists() else ""
        if current != text:
            print(f"{DOCUMENT_PATH} is stale: run python -m local.openapi", file=sys.stderr)
            return 1
        return 0
    DOCUMENT_PATH.parent.mkdir(exist_ok=True)
    DOCUMENT_PATH.write_text(text)
    print(f"wrote {DOCUMENT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
