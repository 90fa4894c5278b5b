"""Groups: create, members, join, leave, kick, dissolve."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from .. import ids
from ..errors import BadRequest
from ..jsonutil import loads
from ..services.groups import MAX_NAME, MEMBER_CAP
from .envelope import auth_required, core, ok, params
from .friend import page_size

bp = Blueprint("group", __name__, url_prefix="/group")


def parse_uids(raw: Any) -> list[int]:
    """Member hashids: a JSON array (in a JSON body, or as text) or comma-separated text."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = loads(text)
            except ValueError:
                raise BadRequest("Invalid parameter: uids") from None
        else:
            raw = [piece.strip() for piece in text.split(",") if piece.strip()]
    if not isinstance(raw, list) or len(raw) > MEMBER_CAP:
        raise BadRequest("Invalid parameter: uids")
    out = []
    for item in raw:
        uid = ids.decode(item) if isinstance(item, str) else 0
        if uid <= 0:
            raise BadRequest("Invalid id in uids")
        out.append(uid)
    return out


@bp.post("/create")
@auth_required
def create():
    p = params()
    return ok(core().groups.create_group(g.uid, p.str("name", max_len=MAX_NAME), parse_uids(p.raw("uids")),
                                         p.int("member_max")))


@bp.get("/member")
@auth_required
def member():
    p = params()
    return ok(core().groups.members(g.uid, p.hashid("id"), *page_size(p)))


@bp.post("/join")
@auth_required
def join():
    core().groups.join(g.uid, params().hashid("id"))
    return ok()


@bp.post("/leave")
@auth_required
def leave():
    core().groups.leave(g.uid, params().hashid("id"))
    return ok()


@bp.post("/kick")
@auth_required
def kick():
    p = params()
    core().groups.kick(g.uid, p.hashid("id"), p.hashid("uid"))
    return ok()


@bp.post("/dissolve")
@auth_required
def dissolve():
    core().groups.dissolve(g.uid, params().hashid("id"))
    return ok()
