"""Conversations: who is online, and a user's unacknowledged messages over HTTP.

Built per request from the composition root's registry, message service and
settings; it holds no state of its own.
"""
from __future__ import annotations

from typing import Any

from .. import ids
from ..errors import BadRequest, Refused
from ..jsonutil import loads
from ..wire import c2c_frame


class ConversationService:
    def __init__(self, registry: Any, messages: Any, admin_uids: tuple[str, ...] | list[str]) -> None:
        self.registry = registry
        self.messages = messages
        # ADMIN_UIDS holds hashids, as an operator copies them from a client.
        self.admin_uids = {ids.decode(h) for h in admin_uids} - {0}

    def online_count(self) -> int:
        return self.registry.count()

    def online_list(self, viewer_uid: int | None) -> list[str]:
        """Hashids of every connected user (hidden ones included): admins only."""
        if viewer_uid is None or viewer_uid not in self.admin_uids:
            raise Refused("Only administrators may list who is online", code=1)
        return sorted(ids.encode(u) for u in self.registry.online_uids())

    def pending_frames(self, uid: int, last_server_ts: int | None) -> list[dict[str, Any]]:
        """/conversation/mine: my C2C messages not yet acked, oldest first, as C2C frames."""
        since = last_server_ts or 0
        if since < 0:
            raise BadRequest("last_server_ts must not be negative")
        return [loads(c2c_frame(row)) for row in self.messages.pending_c2c_since(uid, since)]
