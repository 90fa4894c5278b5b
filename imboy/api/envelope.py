"""The HTTP side of the protocol: the envelope, parameters and auth.

Every API answer is `{"code", "msg", "payload"}` with HTTP 200 (429 for rate
limits); `ImboyError` from any layer becomes that envelope here, and
anything unexpected is logged and becomes a generic code 1.
"""
from __future__ import annotations

import logging
from functools import wraps
from typing import Any, Callable

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


def install(app) -> None:
    app.register_error_handler(ImboyError, handle_imboy_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)


class Params:
    """Request parameters: query string, form body or JSON object body."""

    def __init__(self) -> None:
        data: dict[str, Any] = {}
        data.update(request.args.to_dict())
        if request.method in ("POST", "PUT", "PATCH"):
            if request.mimetype == "application/json":
                raw = request.get_data(cache=True)
                if raw.strip():
                    try:
                        body = loads(raw)
                    except ValueError:
                        raise BadRequest("Malformed JSON body") from None
                    if not isinstance(body, dict):
                        raise BadRequest("The JSON body must be an object")
                    data.update(body)
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
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(f"Invalid parameter: {name}")
        value = str(value)
        if "\x00" in value or "\ufffd" in value:
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
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BadRequest(f"Invalid number: {name}") from None


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
