"""Messages: durable one-to-one and group sends, acks, revokes, the pending store.

Every method here returns only after its transaction committed, so the
router can acknowledge to the sender knowing the message is durable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..batching import GroupCommit
from ..clock import now_ms
from ..db import Database, Tx
from ..errors import BadRequest, Refused
from ..repositories import friends as friends_repo
from ..repositories import groups as groups_repo
from ..repositories import messages as repo
from ..wire import REVOKED_PAYLOAD


@dataclass(slots=True)
class Stored:
    """The outcome of a send: the row as stored and whether it is new."""

    row: dict[str, Any]
    new: bool
    recipients: list[int]


class MessageService:
    def __init__(self, db: Database, pending_limit: int) -> None:
        self.db = db
        self.pending_limit = pending_limit
        # Sends and acks of many connections share commits (one flush each).
        self._sends = GroupCommit(db, "messages.send_c2c")
        self._acks = GroupCommit(db, "messages.ack_c2c")

    # one-to-one -----------------------------------------------------------
    def send_c2c(self, from_uid: int, to_uid: int, msg_id: str, payload: str, created_at: int) -> Stored:
        """Store a message idempotently by id; a resend returns the first copy."""

        def store(tx: Tx) -> Stored:
            existing = repo.c2c_by_msg_id(tx, msg_id)
            if existing is not None:
                if existing["from_id"] != from_uid or existing["to_id"] != to_uid:
                    raise BadRequest("Message id already used")
                return Stored(existing, False, [to_uid])
            if not friends_repo.is_friend(tx, from_uid, to_uid):
                raise BadRequest("Not friends: the message was not sent")
            server_ts = now_ms()
            row = {"msg_id": msg_id, "from_id": from_uid, "to_id": to_uid, "payload": payload,
                   "created_at": created_at, "server_ts": server_ts, "status": repo.PENDING}
            row["id"] = repo.insert_c2c(tx, msg_id, from_uid, to_uid, payload, created_at, server_ts)
            excess = repo.pending_count(tx, to_uid) - self.pending_limit
            if excess > 0:
                repo.drop_oldest_pending(tx, to_uid, excess)
            return Stored(row, True, [to_uid])

        return self._sends.run(store)

    def ack_c2c(self, uid: int, msg_id: str) -> bool:
        """Remove `msg_id` from `uid`'s pending store; False if it was not theirs."""

        def ack(tx: Tx) -> bool:
            if repo.ack_c2c(tx, uid, msg_id):
                return True
            row = repo.c2c_by_msg_id(tx, msg_id)
            return row is not None and row["to_id"] == uid  # acked before: fine

        return self._acks.run(ack)

    def revoke_c2c(self, uid: int, peer_uid: int, msg_id: str) -> dict[str, Any]:
        """Only the sender revokes; a still-pending copy becomes the placeholder."""

        def revoke(tx: Tx) -> dict[str, Any]:
            row = repo.c2c_by_msg_id(tx, msg_id)
            if row is None or row["from_id"] != uid or (peer_uid and row["to_id"] != peer_uid):
                raise BadRequest("Unknown message: nothing was revoked")
            repo.revoke_pending_c2c(tx, row["id"], REVOKED_PAYLOAD)
            return row

        return self.db.run("messages.revoke_c2c", revoke)

    def check_revoke_ack(self, uid: int, revoker_uid: int, msg_id: str) -> dict[str, Any]:
        """A revoke ack must come from the recipient of the revoker's message.

        It also settles the message: a recipient who confirmed the revoke
        has dealt with it, so the placeholder is not delivered again later.
        """

        def confirm(tx: Tx) -> dict[str, Any]:
            row = repo.c2c_by_msg_id(tx, msg_id)
            if row is None or row["to_id"] != uid or row["from_id"] != revoker_uid:
                raise BadRequest("Unknown message")
            repo.ack_c2c(tx, uid, msg_id)
            return row

        return self.db.run("messages.revoke_ack", confirm)

    # groups -----------------------------------------------------------------
    def send_c2g(self, from_uid: int, gid: int, msg_id: str, payload: str, created_at: int) -> Stored:
        """Store a group message once, with a pending entry per other member."""

        def store(tx: Tx) -> Stored:
            existing = repo.c2g_by_msg_id(tx, msg_id)
            if existing is not None:
                if existing["from_id"] != from_uid or existing["to_groupid"] != gid:
                    raise BadRequest("Message id already used")
                return Stored(existing, False, [])
            if not groups_repo.is_active_member(tx, gid, from_uid):
                raise Refused("Not a member of this group")
            members = [u for u in groups_repo.active_member_ids(tx, gid) if u != from_uid]
            server_ts = now_ms()
            repo.insert_c2g(tx, msg_id, from_uid, gid, payload, created_at, server_ts, members)
            row = {"msg_id": msg_id, "from_id": from_uid, "to_groupid": gid, "payload": payload,
                   "created_at": created_at, "server_ts": server_ts}
            return Stored(row, True, members)

        return self.db.run("messages.send_c2g", store)

    def ack_c2g(self, uid: int, msg_id: str) -> bool:
        return self.db.run("messages.ack_c2g", repo.ack_c2g, uid, msg_id) > 0

    # the pending store --------------------------------------------------
    def pending(self, uid: int) -> list[tuple[str, dict[str, Any]]]:
        """Everything `uid` has not acked, oldest first, as ("C2C"|"C2G", row)."""

        def load(tx: Tx) -> list[tuple[str, dict[str, Any]]]:
            c2c = [("C2C", r) for r in repo.pending_c2c(tx, uid)]
            group_rows = repo.pending_c2g(tx, uid, self.pending_limit)
            if len(group_rows) == self.pending_limit:
                # Over the limit, the oldest group messages go, as for C2C.
                repo.trim_c2g(tx, uid, group_rows[0]["tid"])
            c2g = [("C2G", r) for r in group_rows]
            if not c2g:
                return c2c
            return sorted(c2c + c2g, key=lambda kr: (kr[1]["server_ts"], kr[1]["id"]))

        return self.db.run("messages.pending", load)

    def pending_c2c_since(self, uid: int, last_server_ts: int) -> list[dict[str, Any]]:
        return self.db.run("messages.pending_since", repo.pending_c2c, uid, last_server_ts, self.pending_limit)
