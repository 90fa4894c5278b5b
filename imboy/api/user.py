"""User: signature, public profile, presence state."""
from __future__ import annotations

from flask import Blueprint, g

from .envelope import auth_required, core, ok, params

bp = Blueprint("user", __name__, url_prefix="/user")


@bp.post("/change_sign")
@auth_required
def change_sign():
    core().users.change_sign(g.uid, params().str("sign", required=False, strip=False))
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
