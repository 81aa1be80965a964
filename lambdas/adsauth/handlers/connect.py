"""``GET /connect/{invitation}`` and ``GET /result/{outcome}``. No access to any secret."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from adsauth.errors import InvitationError
from adsauth.handlers.common import log_unexpected, logger, page, redirect
from adsauth.pages import RESULT_PAGES
from adsauth.wiring import onboarding

metrics = Metrics(namespace="adsauth", service="adsauth")
app = APIGatewayRestResolver()


@app.get("/connect/<invitation>")
def connect(invitation: str) -> Response:
    start = onboarding().start(invitation)
    metrics.add_metric(name="OnboardingStarted", unit=MetricUnit.Count, value=1)
    logger.info("authorization started")
    binding = Cookie(
        name=start.cookie_name,
        value=start.cookie_value,
        path="/",
        secure=True,
        http_only=True,
        max_age=start.cookie_max_age,
        same_site=SameSite.LAX_MODE,  # Strict would drop the cookie on the redirect back from Amazon
    )
    return redirect(302, start.authorize_url, cookies=[binding])


@app.get("/result/<outcome>")
def result(outcome: str) -> Response:
    return page(outcome if outcome in RESULT_PAGES else "not_found")


@app.not_found
def not_found(_exc: Exception) -> Response:
    return page("not_found")


@app.exception_handler(InvitationError)
def invitation_error(exc: InvitationError) -> Response:
    logger.info("invitation refused", extra={"reason": exc.code})
    return page(exc.code)


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    log_unexpected(exc)
    return page("server_error")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    return app.resolve(event, context)
