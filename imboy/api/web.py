"""The web chat client: one page at /chat, plus the original server's page URLs.

The client is a single-page app (imboy/templates/chat.html with ES modules
under imboy/static/js); the page URLs the original Erlang server served
(`/passport/login.html`, `/friend/find.html`, `/friend/information.html`)
redirect to the matching view of that page, so old bookmarks keep working.
"""
from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request

from .envelope import core

bp = Blueprint("web", __name__)


def _page() -> Response:
    # The page paces its heartbeat by the server's idle timeout (PROTOCOL section 4).
    idle = float(core().config["WS_IDLE_TIMEOUT"])
    response = Response(render_template("chat.html", ws_idle_timeout=idle),
                        content_type="text/html; charset=utf-8")
    # The page holds no data of its own, but a stale copy would load stale modules.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/chat")
@bp.get("/chat.html")
def chat() -> Response:
    return _page()


@bp.get("/passport/login.html")
def login_page():
    return redirect("/chat#/login", code=302)


@bp.get("/friend/find.html")
def find_page():
    return redirect("/chat#/find", code=302)


@bp.get("/friend/information.html")
def information_page():
    uid = request.args.get("id", "")
    # A hashid has only [0-9a-z]; anything else is dropped rather than echoed into the URL.
    if uid and uid.isascii() and uid.isalnum() and len(uid) <= 64:
        return redirect(f"/chat#/friend/{uid.lower()}", code=302)
    return redirect("/chat#/friends", code=302)
