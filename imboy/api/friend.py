"""Friends: lists, profile, search, remarks, categories and friend requests."""
from __future__ import annotations

from flask import Blueprint, g

from ..services.friends import MAX_APPLY_MSG, MAX_CATEGORY_NAME, MAX_REMARK
from .envelope import Params, auth_required, core, ok, params

bp = Blueprint("friend", __name__, url_prefix="/friend")


def page_size(p: Params) -> tuple[int | None, int | None]:
    """`page` (from 1) and `size`, with `limit` accepted for `size`."""
    size = p.int("size")
    return p.int("page"), size if size is not None else p.int("limit")


@bp.get("/list")
@auth_required
def friend_list():
    return ok(core().friends.list_friends(g.uid))


@bp.get("/myfriend")
@auth_required
def myfriend():
    return ok(core().friends.my_friends(g.uid))


@bp.post("/move")
@auth_required
def move():
    p = params()
    core().friends.move(g.uid, p.hashid("uid"), p.hashid("category_id", required=False))
    return ok()


@bp.get("/information")
@auth_required
def information():
    p = params()
    return ok(core().friends.information(g.uid, p.hashid("id"),
                                         p.str("type", required=False, default="friend", max_len=20)))


@bp.get("/find")
@auth_required
def find():
    p = params()
    return ok(core().friends.find(g.uid, p.str("keyword", max_len=100), *page_size(p)))


@bp.post("/change_remark")
@auth_required
def change_remark():
    p = params()
    remark = p.str("remark", required=False, max_len=MAX_REMARK)
    return ok(core().friends.change_remark(g.uid, p.hashid("uid"), remark))


@bp.post("/category/add")
@auth_required
def category_add():
    return ok(core().friends.add_category(g.uid, params().str("name", max_len=MAX_CATEGORY_NAME)))


@bp.post("/category/delete")
@auth_required
def category_delete():
    core().friends.delete_category(g.uid, params().hashid("id"))
    return ok()


@bp.post("/category/rename")
@auth_required
def category_rename():
    p = params()
    core().friends.rename_category(g.uid, p.hashid("id"), p.str("name", max_len=MAX_CATEGORY_NAME))
    return ok()


@bp.post("/apply")
@auth_required
def apply():
    p = params()
    befriended = core().friends.apply(g.uid, p.hashid("uid"), p.str("msg", required=False, max_len=MAX_APPLY_MSG))
    return ok(msg="You are now friends" if befriended else "success")


@bp.post("/confirm")
@auth_required
def confirm():
    core().friends.confirm(g.uid, params().hashid("uid"))
    return ok()


@bp.post("/delete")
@auth_required
def delete():
    core().friends.delete(g.uid, params().hashid("uid"))
    return ok()
