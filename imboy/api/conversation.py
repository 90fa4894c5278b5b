"""Conversations: online count (list for admins), pending messages, the request box."""
from __future__ import annotations

from flask import Blueprint, g, request

from ..services.conversations import ConversationService
from .envelope import auth_required, core, ok, params
from .friend import page_size

bp = Blueprint("conversation", __name__, url_prefix="/conversation")


def _service() -> ConversationService:
    imboy = core()
    return ConversationService(imboy.registry, imboy.messages, imboy.config.get("ADMIN_UIDS") or ())


@bp.get("/online")
def online():
    """No auth for the count; `type=list` needs an admin's access token."""
    service = _service()
    if params().str("type", required=False, max_len=20) == "list":
        token = request.headers.get("authorization")
        viewer = core().tokens.verify_access(token) if token else None
        who = service.online_list(viewer)
        return ok(who, msg=str(len(who)))
    return ok(msg=str(service.online_count()))


@bp.get("/mine")
@auth_required
def mine():
    return ok(_service().pending_frames(g.uid, params().int("last_server_ts")))


@bp.get("/msgbox")
@auth_required
def msgbox():
    return ok(core().friends.msgbox(g.uid, *page_size(params())))
