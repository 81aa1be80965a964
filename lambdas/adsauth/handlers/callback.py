"""``GET /callback`` (LwA redirects the browser here) and ``POST /token`` (IAM-signed manual flow).

Order matters on the callback: the query is checked, then the state and its browser binding, and
only then is anything consumed or sent to LwA. A replay of the same callback (double submit, retry)
is answered from the idempotency record: one exchange, one result.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from functools import lru_cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from adsauth import oauth
from adsauth.deadline import Deadline
from adsauth.errors import AdvertiserUnknown, InvalidRequest, InvitationError, StateError, TransitionRefused
from adsauth.handlers.common import header, log_unexpected, logger, page, redirect
from adsauth.models import ConnectionResult
from adsauth.onboarding import PLATFORM_FAILURES
from adsauth.regions import Region
from adsauth.settings import get_settings
from adsauth.wiring import onboarding

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

metrics = Metrics(namespace="adsauth", service="adsauth")
app = APIGatewayRestResolver()

CODE = re.compile(r"^[\x21-\x7e]{1,512}$")  # printable ASCII, no spaces
ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
SINGLE_VALUED = ("code", "state", "error")
MAX_BODY_BYTES = 8 * 1024
OUTCOME_METRIC = {
    "connected": "OnboardingConnected",
    "declined": "OnboardingDeclined",
    "retry": "OnboardingFailed",
    "failed": "OnboardingFailed",
}


# --- idempotency -----------------------------------------------------------------------------
# Powertools idempotency is imported when a callback or token request first gets this far (its
# DynamoDB layer imports boto3 at module level); a request refused before it never loads it.
class AttemptInProgress(Exception):
    """The same attempt is running right now (Powertools' ``IdempotencyAlreadyInProgressError``)."""


class AttemptMismatch(Exception):
    """The key was already used for another request (Powertools' ``IdempotencyValidationError``)."""


@lru_cache(maxsize=1)
def _idempotency() -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    persistence = DynamoDBPersistenceLayer(
        table_name=get_settings().table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="IDEMPOTENCY#onboarding",
        expiry_attr="ttl",
    )
    config = IdempotencyConfig(
        event_key_jmespath="key",
        # a replay must also ask for the same thing: the same code sent for another advertiser
        # is refused instead of being answered with the first advertiser's result
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=24 * 3600,
    )
    return persistence, config


@lru_cache(maxsize=1)
def _once():
    from aws_lambda_powertools.utilities.idempotency import idempotent_function

    persistence, config = _idempotency()

    @idempotent_function(data_keyword_argument="attempt", persistence_store=persistence, config=config)
    def run(*, attempt: dict, work) -> dict:
        return asdict(work())

    return run


def once(key: str, request: str, work) -> ConnectionResult:
    """Run ``work`` at most once per ``key`` (already a hash); replays of the same ``request``
    (a hash too) get the first result, others raise ``AttemptMismatch``; while the first runs,
    ``AttemptInProgress``."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    run = _once()
    # the record's in-progress expiry is this invocation's remaining time
    _idempotency()[1].register_lambda_context(app.lambda_context)
    try:
        data = run(attempt={"key": key, "request": request}, work=work)
    except IdempotencyAlreadyInProgressError:
        raise AttemptInProgress() from None
    except IdempotencyValidationError:
        raise AttemptMismatch() from None
    data["regions_ok"] = tuple(data.get("regions_ok", ()))
    data["regions_pending"] = tuple(data.get("regions_pending", ()))
    return ConnectionResult(**data)


def _flow():
    """The onboarding with its outbound calls bounded by this invocation's remaining time, less
    the margin kept to store the result and answer (``CALLBACK_MARGIN_SECONDS``)."""
    deadline = Deadline.from_context(app.lambda_context, margin_seconds=get_settings().callback_margin_seconds)
    return onboarding().within(deadline)


def _count_platform_failure(result: ConnectionResult) -> None:
    if result.reason in PLATFORM_FAILURES:  # LwA refused the client itself: the platform alarm
        metrics.add_metric(name="LwaInvalidClient", unit=MetricUnit.Count, value=1)


# --- GET /callback -----------------------------------------------------------------------------
def _callback_params() -> tuple[str | None, str | None, str | None]:
    event = app.current_event
    multi = event.multi_value_query_string_parameters or {}
    for name in SINGLE_VALUED:
        if len(multi.get(name) or []) > 1:
            raise InvalidRequest()
    params = event.query_string_parameters or {}
    state, code, error = params.get("state"), params.get("code"), params.get("error")
    if error is not None:
        if not ERROR_CODE.fullmatch(error):
            error = "authorization_error"  # unknown codes are not echoed, only classified
        code = None
    elif code is None or not CODE.fullmatch(code):
        raise InvalidRequest()
    return state, code, error


@app.get("/callback")
def callback() -> Response:
    state, code, error = _callback_params()
    cookies = oauth.parse_cookie_header(header(app.current_event.headers, "cookie"))
    flow = _flow()
    pending, verifier = flow.check_state(state, cookies)
    key = f"callback:{pending.state_hash}:{oauth.digest(code or 'error:' + str(error))}"
    result = once(key, pending.state_hash, lambda: flow.complete(pending, verifier, code=code, error=error))
    metrics.add_metric(name=OUTCOME_METRIC[result.outcome], unit=MetricUnit.Count, value=1)
    _count_platform_failure(result)
    logger.info(
        "authorization finished",
        extra={"advertiser_id": result.advertiser_id, "outcome": result.outcome, "reason": result.reason},
    )
    # The binding cookie is left to expire on its own (10 minutes): clearing it here would turn a
    # browser's repeated callback into a "wrong browser" page instead of the same result.
    return redirect(303, get_settings().result_url(result.outcome))


# --- POST /token -------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def token_request_model() -> type:
    """``TokenRequest``, the body of POST /token: built on first use, so the browser's callback
    never loads pydantic."""
    from pydantic import BaseModel, ConfigDict, Field

    class TokenRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

        code: str = Field(min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$")
        redirect_uri: str = Field(min_length=9, max_length=2048, pattern=r"^https://[\x21-\x7e]+$")
        region: str = Field(pattern=r"^(NA|EU|FE)$")
        advertiser: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")

    return TokenRequest


def __getattr__(name: str):
    if name == "TokenRequest":  # ``from adsauth.handlers.callback import TokenRequest`` keeps working
        return token_request_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _json_error(status: int, error: str, message: str) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": error, "message": message}),
        headers={"Cache-Control": "no-store"},
    )


class ExchangeNotKept(Exception):
    """A manual exchange that did not connect: not remembered, so the same code can be retried
    (e.g. with the right redirect_uri; LwA only consumes a code on success)."""

    def __init__(self, result: ConnectionResult) -> None:
        super().__init__(result.reason)
        self.result = result


TOKEN_BODY_HELP = (
    "The body must be a JSON object with exactly these string fields: code, redirect_uri "
    "(https), region (NA, EU or FE) and advertiser (an advertiser id)."
)
MANUAL_FAILURES = {  # reason -> (status, error, fixed message); one per meaning of LwA's answer
    "code_rejected": (400, "invalid_grant", "Login with Amazon rejected the code: it expired, was used, or the redirect_uri differs."),
    "request_rejected": (400, "invalid_request", "Login with Amazon found the exchange malformed (invalid_request): check the code and the redirect_uri."),
    "lwa_refused": (400, "invalid_request", "Login with Amazon refused the exchange with an error this version does not know; try again with a new code."),
    "amazon_unavailable": (503, "lwa_unavailable", "Login with Amazon did not answer; try again with a new code."),
    "out_of_time": (503, "lwa_unavailable", "No time was left to ask Login with Amazon; nothing was sent: the same code may be tried again."),
    "client_misconfigured": (500, "client_misconfigured", "The LwA client secret in Secrets Manager is missing or wrong."),
    "unauthorized_client": (500, "client_misconfigured", "Login with Amazon does not allow this client the authorization-code grant (unauthorized_client): check its security profile."),
    "invalid_scope": (500, "client_misconfigured", "Login with Amazon refused the configured scope (invalid_scope): check LWA_SCOPE and the client's Ads API access."),
    "unsupported_grant_type": (500, "client_misconfigured", "Login with Amazon does not support the grant type sent (unsupported_grant_type)."),
}


@app.post("/token")
def token() -> Response:
    raw = app.current_event.body or ""
    if len(raw.encode("utf-8", "replace")) > MAX_BODY_BYTES:
        return _json_error(413, "invalid_request", "The body is too large.")
    from pydantic import ValidationError

    try:
        request = token_request_model().model_validate_json(raw)
    except ValidationError:
        return _json_error(400, "invalid_request", TOKEN_BODY_HELP)
    flow = _flow()
    region = Region(request.region)

    def exchange() -> ConnectionResult:
        result = flow.exchange_manual(
            advertiser_id=request.advertiser, code=request.code, redirect_uri=request.redirect_uri, region=region
        )
        if result.outcome != "connected":
            raise ExchangeNotKept(result)  # the idempotency record is dropped: a corrected retry may run
        return result

    try:
        result = once(
            f"token:{oauth.digest(request.code)}",
            oauth.digest(f"{request.advertiser}|{request.region}|{request.redirect_uri}"),
            exchange,
        )
    except ExchangeNotKept as failed:
        result = failed.result
    logger.info("manual exchange finished", extra={"advertiser_id": result.advertiser_id, "outcome": result.outcome,
                                                   "reason": result.reason})
    _count_platform_failure(result)
    if result.outcome != "connected":
        status, error, message = MANUAL_FAILURES.get(result.reason, (502, "failed", "The exchange failed."))
        return _json_error(status, error, message)
    advertiser = flow.store.get_advertiser(result.advertiser_id)
    profiles = flow.store.list_profiles(result.advertiser_id)
    body = {
        "advertiser": {
            "id": advertiser.advertiser_id,
            "name": advertiser.name,
            "status": advertiser.status.value,
            "region": advertiser.region.value,
            "tokenExpiresAt": advertiser.token_expires_at,
            "pendingRegions": [r.value for r in advertiser.pending_regions],
        },
        "profiles": [p.public() for p in profiles],
    }
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(body),
                    headers={"Cache-Control": "no-store"})


# --- errors, mapped in one place ---------------------------------------------------------------
def _is_token_route() -> bool:
    return app.current_event.resource == "/token"


@app.exception_handler(StateError)
def state_error(exc: StateError) -> Response:
    metrics.add_metric(name="CallbackRejected", unit=MetricUnit.Count, value=1)
    logger.warning("callback refused", extra={"reason": exc.code})
    return page(exc.code)


@app.exception_handler(InvitationError)
def invitation_error(exc: InvitationError) -> Response:
    # replaced or withdrawn (a newer generation), completed, busy in another tab, or capped:
    # no token call was made, or what it stored was taken back
    metrics.add_metric(name="CallbackRejected", unit=MetricUnit.Count, value=1)
    logger.warning("callback refused", extra={"reason": exc.code})
    if _is_token_route():
        return _json_error(409, "advertiser_changed", "The advertiser was revoked, re-invited or changed during the exchange; nothing was stored.")
    return page(exc.code)


@app.exception_handler(InvalidRequest)
def invalid_request(exc: InvalidRequest) -> Response:
    logger.info("request refused", extra={"reason": exc.code})
    if _is_token_route():
        return _json_error(400, "invalid_request", TOKEN_BODY_HELP)
    return page("invalid_request")


@app.exception_handler(AdvertiserUnknown)
def advertiser_unknown(_exc: AdvertiserUnknown) -> Response:
    return _json_error(404, "advertiser_unknown", "No advertiser has this id; create it with `invite` first.")


@app.exception_handler(TransitionRefused)
def transition_refused(exc: TransitionRefused) -> Response:
    return _json_error(409, "advertiser_revoked", str(exc))


@app.exception_handler(AttemptInProgress)
def in_progress(_exc: Exception) -> Response:
    if _is_token_route():
        return _json_error(409, "in_progress", "This code is being exchanged right now; retry in a few seconds.")
    return page("in_progress")


@app.exception_handler(AttemptMismatch)
def replay_mismatch(_exc: Exception) -> Response:
    if _is_token_route():
        return _json_error(409, "code_already_used", "This code was already exchanged for another request.")
    return page("state_replayed")


@app.not_found
def not_found(_exc: Exception) -> Response:
    return page("not_found")


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    log_unexpected(exc)
    if _is_token_route():
        return _json_error(500, "server_error", "Unexpected error; the operator has the details in the logs.")
    return page("server_error")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    return app.resolve(event, context)
