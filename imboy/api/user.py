"""User: signature, public profile, presence state."""
from __future__ import annotations

from flask import Blueprint, g

from ..errors import BadRequest
from .envelope import auth_required, core, ok, params

bp = Blueprint("user", __name__, url_prefix="/user")


@bp.post("/change_sign")
@auth_required
def change_sign():
    p = params()
    if p.raw("sign") is None:
        # Absent is a client bug; an empty value clears the signature.
        raise BadRequest("Missing parameter: sign")
    core().users.change_sign(g.uid, p.str("sign", required=False, strip=False))
    return ok()


@bp.get("/open_info")
@auth_required
def open_info():
    return ok(core().users.open_info(params().hashid("id")))


@bp.post("/change_state")
@auth_required
def change_state():
    core().users.change_state(g.uid, params().str("state"))
    return ok()
