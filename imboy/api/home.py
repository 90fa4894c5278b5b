"""`GET /` and `/help`: every endpoint of this server; `/auth/assets` for upload servers.

The endpoint list is built from the application's own URL map, so a route
added anywhere shows up here; the table below only adds words to it.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import Blueprint, Response, current_app, render_template

from ..errors import ImboyError
from .envelope import auth_required, core, params

bp = Blueprint("home", __name__)

# path -> (parameters, what it does).  Auth is read from the view itself.
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "/": ("", "This page"),
    "/help": ("", "This page"),
    "/init": ("", "RSA public key for the login password"),
    "/passport/getcode": ("type (email), account", "Send a 6-digit verification code"),
    "/passport/signup": ("type, account, pwd, rsa_encrypt, code, ref_uid", "Create an account; logs in"),
    "/passport/login": ("account, pwd, rsa_encrypt, type", "Log in: tokens and profile"),
    "/passport/findpassword": ("type, account, code, pwd, rsa_encrypt", "Reset the password with a code"),
    "/refreshtoken": ("header imboy-refreshtoken", "A new access token"),
    "/user/change_state": ("state: online, offline or hide", "Set my presence state"),
    "/user/change_sign": ("sign", "Set my signature"),
    "/user/open_info": ("id", "A user's public profile"),
    "/friend/list": ("", "Me and my friends with online/offline status"),
    "/friend/myfriend": ("", "My groups and my friends by category"),
    "/friend/move": ("uid, category_id", "Move a friend to one of my categories"),
    "/friend/information": ("type=friend, id", "A user's profile, settings and my remark"),
    "/friend/find": ("keyword, page, size (max 50)", "Users by account, email, mobile or nickname prefix"),
    "/friend/change_remark": ("uid, remark", "Set the name I see for a friend"),
    "/friend/category/add": ("name", "Add a friend category"),
    "/friend/category/delete": ("id", "Delete a category; its friends go to default"),
    "/friend/category/rename": ("id, name", "Rename a category"),
    "/friend/apply": ("uid, msg", "Send a friend request (S2C apply_friend)"),
    "/friend/confirm": ("uid", "Accept a friend request (S2C apply_friend_confirm)"),
    "/friend/delete": ("uid", "End a friendship (S2C friend_delete)"),
    "/group/create": ("name, uids, member_max", "Create a group with friends; I own it"),
    "/group/member": ("id, page, size (max 500)", "Members of a group I belong to"),
    "/group/join": ("id", "Join a group (S2C group_member_join)"),
    "/group/leave": ("id", "Leave a group (S2C group_member_leave)"),
    "/group/kick": ("id, uid", "Owner or admin removes a member (S2C group_member_leave)"),
    "/group/dissolve": ("id", "Owner dissolves the group (S2C group_dissolve)"),
    "/conversation/online": ("type=list (admins only)", "Number of users online; the list for admins"),
    "/conversation/mine": ("last_server_ts", "My unacknowledged one-to-one messages"),
    "/conversation/msgbox": ("page, size", "Friend requests waiting for my answer"),
    "/auth/assets": ("a, s, v", "Upload servers check a signed asset URL: ok or fail"),
}
# Routes that answer without a token but treat one specially.
AUTH_NOTES = {"/conversation/online": "no (admin token for type=list)",
              "/refreshtoken": "refresh token"}
# Served by the WebSocket handler before the Flask app sees the request.
EXTRA_ROUTES = [("GET", "/ws", "authorization (header or query), cos",
                 "WebSocket upgrade, subprotocol text", "yes")]

_AUTH_WRAPPER_CODE = auth_required(lambda: None).__code__


def _needs_auth(view: Any) -> bool:
    # Every view wrapped by auth_required shares the wrapper's code object.
    return getattr(view, "__code__", None) is _AUTH_WRAPPER_CODE


def endpoint_rows() -> list[dict[str, str]]:
    """One row per (path, methods) the application serves."""
    rows = []
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = current_app.view_functions.get(rule.endpoint)
        args, text = DESCRIPTIONS.get(rule.rule, ("", ""))
        auth = AUTH_NOTES.get(rule.rule) or ("yes" if _needs_auth(view) else "no")
        methods = ", ".join(sorted(m for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS")))
        rows.append({"methods": methods, "path": rule.rule, "auth": auth, "params": args, "text": text})
    for methods, path, args, text, auth in EXTRA_ROUTES:
        rows.append({"methods": methods, "path": path, "auth": auth, "params": args, "text": text})
    return sorted(rows, key=lambda r: r["path"])


@bp.get("/")
@bp.get("/help")
def home():
    return render_template("home.html", rows=endpoint_rows())


def asset_signature_ok(keys: dict[str, str], a: str, s: str, v: str) -> bool:
    """md5hex(key_for_scene(s) + v)[8:24] == a, compared in constant time."""
    key = keys.get(s)
    if not key or not a or not v:
        return False
    expected = hashlib.md5((key + v).encode("utf-8")).hexdigest()[8:24]
    return hmac.compare_digest(expected, a)


@bp.route("/auth/assets", methods=["GET", "POST"])
def auth_assets():
    """Plain text for upload servers: `ok` or `fail`, never an envelope."""
    try:
        p = params()
        a, s, v = (p.str(n, required=False, max_len=4096) for n in ("a", "s", "v"))
    except ImboyError:
        a = s = v = ""
    answer = "ok" if asset_signature_ok(core().config.get("ASSET_AUTH_KEYS") or {}, a, s, v) else "fail"
    return Response(answer, content_type="text/plain; charset=utf-8")
