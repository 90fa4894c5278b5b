"""The HTTP side of the protocol: the envelope, parameters and auth.

Every API answer is `{"code", "msg", "payload"}` with HTTP 200 (429 for rate
limits); `ImboyError` from any layer becomes that envelope here, and
anything unexpected is logged and becomes a generic code 1.
"""
from __future__ import annotations

import io
import logging
from functools import wraps
from typing import Any, Callable
from urllib.parse import parse_qsl

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from .. import ids
from ..errors import BadRequest, ImboyError, TokenInvalid
from ..jsonutil import dumps, loads

log = logging.getLogger("imboy.http")

JSON_TYPE = "application/json; charset=utf-8"


def envelope(payload: Any = None, msg: str = "success", code: int = 0, status: int = 200) -> Response:
    body = {"code": code, "msg": msg, "payload": [] if payload is None else payload}
    return Response(dumps(body), status=status, content_type=JSON_TYPE)


def ok(payload: Any = None, msg: str = "success") -> Response:
    return envelope(payload, msg)


def handle_imboy_error(exc: ImboyError) -> Response:
    core().metrics.errors.labels(str(exc.code), "http").inc()
    return envelope(exc.payload, exc.msg, exc.code, exc.http_status)


def handle_http_error(exc: HTTPException) -> Response | HTTPException:
    if isinstance(exc, NotFound):
        return exc  # unknown paths stay plain 404
    if isinstance(exc, RequestEntityTooLarge):
        return envelope(None, "Request body too large", 1)
    if exc.code == 405:
        return envelope(None, "Method not allowed", 1)
    return envelope(None, exc.description or exc.name, 1)


def handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return envelope(None, "Internal error, try again", 1)


def _buffer_chunked_body() -> None:
    """Read a chunked body (no Content-Length) up front, refusing it past the limit.

    For such a body Werkzeug stops reading at MAX_CONTENT_LENGTH and quietly
    hands out the truncated part.  Bodies here are small (1 MiB at most), so
    the body is read whole, limit + 1 bytes at most, and from then on looks
    like one sent with a Content-Length.
    """
    env = request.environ
    if "chunked" not in env.get("HTTP_TRANSFER_ENCODING", "").lower() or env.get("CONTENT_LENGTH"):
        return
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or _DEFAULT_BODY_LIMIT
    stream = env["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge()
    env["wsgi.input"] = io.BytesIO(b"".join(parts))
    env["CONTENT_LENGTH"] = str(size)
    env.pop("HTTP_TRANSFER_ENCODING", None)
    env.pop("wsgi.input_terminated", None)


def install(app) -> None:
    app.before_request(_buffer_chunked_body)
    app.register_error_handler(ImboyError, handle_imboy_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)


# Integers beyond this are nobody's id, count or timestamp (SQL BIGINT).
_INT_LIMIT = 2**63
_MAX_FIELDS = 1000
_DEFAULT_BODY_LIMIT = 1024 * 1024


class Params:
    """Request parameters: query string, form body or JSON object body.

    Values are text.  In a JSON body a string is taken as it is and an
    integer as its decimal text (a client may well send an account number or
    `rsa_encrypt` as a number); anything else (true/false, fractions, lists,
    objects) where a parameter is read is refused, and null counts as absent.
    """

    def __init__(self) -> None:
        data: dict[str, Any] = _urlencoded(request.query_string, "query string")
        if request.method in ("POST", "PUT", "PATCH"):
            if request.is_json:
                raw = request.get_data(cache=True)
                if raw.strip():
                    try:
                        body = loads(raw)
                    except ValueError:
                        raise BadRequest("Malformed JSON body") from None
                    if not isinstance(body, dict):
                        raise BadRequest("The JSON body must be an object")
                    data.update(body)
            elif request.mimetype == "application/x-www-form-urlencoded":
                data.update(_urlencoded(request.get_data(cache=True), "request body"))
            else:
                data.update(request.form.to_dict())
        self._data = data

    def raw(self, name: str) -> Any:
        return self._data.get(name)

    def str(self, name: str, required: bool = True, default: str = "", max_len: int | None = None,
            strip: bool = True) -> str:
        value = self._data.get(name)
        if value is None or value == "":
            if required:
                raise BadRequest(f"Missing parameter: {name}")
            return default
        if type(value) is int and -_INT_LIMIT < value < _INT_LIMIT:
            value = str(value)
        if not isinstance(value, str):
            raise BadRequest(f"Invalid parameter: {name} must be a string")
        if "\x00" in value or "\ufffd" in value or not _encodable(value):
            # NUL, bytes that were not UTF-8, lone surrogates from JSON "\ud800".
            raise BadRequest(f"Invalid characters in parameter: {name}")
        if strip:
            value = value.strip()
        if required and not value:
            raise BadRequest(f"Missing parameter: {name}")
        if max_len is not None and len(value) > max_len:
            raise BadRequest(f"Parameter too long: {name} (at most {max_len} characters)")
        return value

    def hashid(self, name: str, required: bool = True) -> int:
        """A hashid parameter, decoded; unknown or undecodable ids are refused."""
        value = self.str(name, required=required, max_len=64)
        if not value and not required:
            return 0
        n = ids.decode(value)
        if n <= 0 and value != ids.encode(0):
            raise BadRequest(f"Invalid id: {name}")
        return n

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self._data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str) and len(value) <= 20:
            text = value.strip()
            if text.lstrip("-").isdigit() and text.isascii():
                value = int(text)
        if type(value) is not int or not -_INT_LIMIT < value < _INT_LIMIT:
            raise BadRequest(f"Invalid number: {name}")
        return value


def _urlencoded(raw: bytes, what: str) -> dict[str, str]:
    """Parse `a=1&b=2` strictly as UTF-8; the first of repeated names wins.

    Werkzeug's own parser drops a whole body that is not UTF-8 and keeps
    undecodable %XX escapes as literal text; a client sending either has a
    bug it should hear about.
    """
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict",
                          max_num_fields=_MAX_FIELDS)
    except UnicodeDecodeError:
        raise BadRequest(f"The {what} is not valid UTF-8") from None
    except ValueError:
        raise BadRequest(f"Too many parameters in the {what}") from None
    data: dict[str, str] = {}
    for name, value in pairs:
        data.setdefault(name, value)
    return data


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def params() -> Params:
    if "imboy_params" not in g:
        g.imboy_params = Params()
    return g.imboy_params


def core():
    """The application's composition root (services, db, registry)."""
    return current_app.extensions["imboy"]


def auth_required(view: Callable) -> Callable:
    """Authenticate the access token; the user id is in `g.uid`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = request.headers.get("authorization")
        if not token:
            raise TokenInvalid("Please log in")
        g.uid = core().tokens.verify_access(token)
        return view(*args, **kwargs)

    return wrapper
