"""Domain errors. Each has a fixed ``code`` and a fixed message: no error ever carries a user
input, a token, a code or a state value, so any of them is safe to log or show."""

from __future__ import annotations


class AdsAuthError(Exception):
    code = "error"
    message = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


# --- invitations -------------------------------------------------------------------------------
class InvitationError(AdsAuthError):
    code = "invitation_invalid"


class InvitationUnknown(InvitationError):
    code = "invitation_unknown"
    message = "The invitation is not known."


class InvitationExpired(InvitationError):
    code = "invitation_expired"
    message = "The invitation has expired."


class InvitationUsed(InvitationError):
    code = "invitation_used"
    message = "The invitation has already been completed."


class InvitationReplaced(InvitationError):
    """A newer generation exists: the link was replaced (reinvite, re-consent), cancelled or
    the advertiser was revoked. Such a link starts nothing and completes nothing."""

    code = "invitation_replaced"
    message = "The invitation was replaced by a newer one or withdrawn."


class InvitationBusy(InvitationError):
    """Another flow of the same invitation is exchanging its code right now."""

    code = "in_progress"
    message = "Another sign-in of this invitation is being completed."


class TooManyAttempts(InvitationError):
    """The invitation's cap on open flows or on token calls in a window was reached."""

    code = "too_many_attempts"
    message = "Too many sign-in attempts for this invitation; wait and try again."


# --- OAuth state -------------------------------------------------------------------------------
class StateError(AdsAuthError):
    code = "state_invalid"
    message = "The authorization state is missing, unknown or already used."


class StateInvalid(StateError):
    code = "state_invalid"


class StateExpired(StateError):
    code = "state_expired"
    message = "The authorization state has expired."


class StateUnbound(StateError):
    code = "state_unbound"
    message = "The authorization was started in another browser."


class StateReplayed(StateError):
    code = "state_replayed"
    message = "The authorization state has already been used."


# --- input -------------------------------------------------------------------------------------
class InvalidRequest(AdsAuthError):
    code = "invalid_request"
    message = "The request is malformed."


class AdvertiserUnknown(AdsAuthError):
    code = "advertiser_unknown"
    message = "The advertiser is not known."


class TransitionRefused(AdsAuthError):
    """A lifecycle transition whose condition did not hold: nothing was changed. The message
    is fixed per transition and says why (see ``adsauth.lifecycle``)."""

    code = "transition_refused"
    message = "The advertiser changed meanwhile; nothing was done."


# --- Login with Amazon -------------------------------------------------------------------------
class LwaError(AdsAuthError):
    code = "lwa_error"


class LwaOAuthError(LwaError):
    """LwA answered with an RFC 6749 §5.2 error. Never retried."""

    code = "lwa_oauth_error"
    message = "Login with Amazon refused the request."

    def __init__(self, oauth_error: str) -> None:
        # only known RFC 6749 codes are kept: the field comes from a remote server
        self.oauth_error = oauth_error if oauth_error in OAUTH_ERRORS else "unknown"
        super().__init__(f"Login with Amazon refused the request ({self.oauth_error}).")


class GrantInvalid(LwaOAuthError):
    """``invalid_grant``: the code is expired or used, or the advertiser revoked the grant."""

    code = "invalid_grant"

    def __init__(self, oauth_error: str = "invalid_grant") -> None:
        super().__init__(oauth_error)


class ClientRejected(LwaOAuthError):
    """LwA refused this deployment's client or what it asks for: a platform fault, the same for
    every advertiser. Never retried; it raises the platform alarm (refreshes pause)."""

    code = "client_rejected"

    def __init__(self, oauth_error: str | None = None) -> None:
        super().__init__(oauth_error or self.code)


class ClientInvalid(ClientRejected):
    """``invalid_client``: the LwA client id or secret is wrong or was rotated."""

    code = "invalid_client"


class ClientUnauthorized(ClientRejected):
    """``unauthorized_client``: the client may not use this grant type (security profile)."""

    code = "unauthorized_client"


class ScopeInvalid(ClientRejected):
    """``invalid_scope``: the configured scope is unknown or not granted to the client."""

    code = "invalid_scope"


class GrantTypeUnsupported(ClientRejected):
    """``unsupported_grant_type``: LwA does not take the grant type we send."""

    code = "unsupported_grant_type"


class RequestRejected(LwaOAuthError):
    """``invalid_request``: LwA found this one request malformed (a missing or repeated
    parameter, e.g. the PKCE verifier). Sending it again gets the same answer: not retried, and
    not an outage."""

    code = "invalid_request"

    def __init__(self, oauth_error: str = "invalid_request") -> None:
        super().__init__(oauth_error)


class LwaRefused(LwaOAuthError):
    """A 4xx naming an error code this version does not know: treated as a refusal of this
    request (like ``invalid_request``), never as an outage."""

    code = "lwa_refused"

    def __init__(self, oauth_error: str = "unknown") -> None:
        super().__init__(oauth_error)


class LwaUnavailable(LwaError):
    code = "lwa_unavailable"
    message = "Login with Amazon did not answer in time."


class LwaOutOfTime(LwaUnavailable):
    """The invocation's time budget ran out before the request could be sent: nothing reached
    LwA (an authorization code is still unused)."""

    code = "lwa_out_of_time"
    message = "No time was left to ask Login with Amazon; nothing was sent."


class ClientMisconfigured(LwaError):
    code = "client_misconfigured"
    message = "The LwA client secret in Secrets Manager is missing or malformed."


# --- stored tokens ---------------------------------------------------------------------------
class RefreshTokenMissing(AdsAuthError):
    code = "refresh_token_missing"
    message = "The advertiser has no stored refresh token."


class RefreshTokenSuperseded(AdsAuthError):
    """Another writer replaced the refresh token version this one was derived from."""

    code = "refresh_token_superseded"
    message = "A newer refresh token was stored meanwhile; this one is discarded."


class PackTooLarge(AdsAuthError):
    """A pack's value would exceed what one secret holds; nothing was written."""

    code = "pack_too_large"
    message = "The pack's tokens do not fit one secret value; its newest members move out."


class TokensDeleted(AdsAuthError):
    """The advertiser's secrets are gone (revoked meanwhile); the refresher never recreates them."""

    code = "tokens_deleted"
    message = "The advertiser's token secrets were deleted meanwhile."


class RefreshTokenUnsaved(AdsAuthError):
    """LwA rotated the refresh token and storing the new one failed on every attempt."""

    code = "refresh_token_unsaved"
    message = "The rotated refresh token could not be stored."


# --- Ads API -----------------------------------------------------------------------------------
class AdsApiError(AdsAuthError):
    code = "ads_api_error"
    message = "The Amazon Ads API did not answer as expected."


class AdsApiUnauthorized(AdsApiError):
    code = "ads_unauthorized"
    message = "The Amazon Ads API rejected the access token."


class AdsApiUnavailable(AdsApiError):
    code = "ads_unavailable"
    message = "The Amazon Ads API did not answer in time."


# RFC 6749 §4.1.2.1 (authorization response) and §5.2 (token response) error codes.
AUTHORIZE_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    }
)
OAUTH_ERRORS = AUTHORIZE_ERRORS | {"invalid_client", "invalid_grant", "unsupported_grant_type"}
