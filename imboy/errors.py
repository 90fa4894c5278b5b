"""One error hierarchy for every layer.

Any layer may raise an :class:`ImboyError`; the HTTP layer turns it into the
JSON envelope and the WebSocket layer into an error frame, each in one place.
Codes follow PROTOCOL section 1: 1 silent failure, 2 failure the client shows,
705 access token expired, 706 token invalid or missing, 786 kicked.
"""
from __future__ import annotations


class ImboyError(Exception):
    """A refusal the client is told about, with a protocol code."""

    code = 1
    http_status = 200
    default_msg = "Request failed"

    def __init__(self, msg: str | None = None, code: int | None = None, payload=None):
        super().__init__(msg or self.default_msg)
        self.msg = msg or self.default_msg
        if code is not None:
            self.code = code
        self.payload = payload

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, msg={self.msg!r})"


class BadRequest(ImboyError):
    """Missing or malformed input."""

    code = 1
    default_msg = "Invalid request"


class Refused(ImboyError):
    """A well-formed request the rules do not allow; the client shows msg."""

    code = 2
    default_msg = "Not allowed"


class NotFound(ImboyError):
    code = 1
    default_msg = "Not found"


class TokenExpired(ImboyError):
    code = 705
    default_msg = "Token expired"


class TokenInvalid(ImboyError):
    code = 706
    default_msg = "Token invalid"


class RefreshTokenNotAccepted(ImboyError):
    """A refresh token used where an access token is needed (PROTOCOL 2)."""

    code = 1
    default_msg = "Does not support refreshtoken"


class RateLimited(ImboyError):
    code = 1
    http_status = 429
    default_msg = "Too many requests, try again later"


class ServiceUnavailable(ImboyError):
    """The database (or another dependency) cannot serve the request now."""

    code = 1
    default_msg = "Service temporarily unavailable, try again"
