"""Messages: durable one-to-one and group sends, acks, revokes, the pending store.

Every method here returns (or, given a `done` callback, calls it) only after
its transaction committed, so the router can acknowledge to the sender
knowing the message is durable.  Sends and acks of many connections share
batches (`GroupCommit`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..batching import GroupCommit
from .. import clock
from ..db import Database, Tx
from ..errors import BadRequest, ImboyError, Refused
from ..repositories import messages as repo
from ..wire import REVOKED_PAYLOAD


@dataclass(slots=True)
class Stored:
    """The outcome of a send: the row as stored and whether it is new."""

    row: dict[str, Any]
    new: bool
    recipients: list[int]


# Recipients whose pending room one process remembers (then it starts over).
ROOM_ENTRIES = 100_000


class MessageService:
    def __init__(self, db: Database, pending_limit: int) -> None:
        self.db = db
        self.pending_limit = pending_limit
        # Sends and acks of many connections share transactions and commits.
        self._sends: GroupCommit[tuple, Stored] = GroupCommit(
            db, "messages.send_c2c", self._store_c2c, lanes=4, lane=lambda item: item[0])
        self._acks: GroupCommit[tuple[int, str], bool] = GroupCommit(
            db, "messages.ack_c2c", _ack_c2c, lanes=2, lane=lambda item: item[1])
        # Recipient -> how many more messages it can surely take before the
        # pending limit (a lower bound kept by this process, see _store_c2c).
        self._room: dict[int, int] = {}
        # Group acks come a thousand at a time (one per member): batches of up to
        # 1,024 keep their store abreast of the deliveries (256 fell seconds behind).
        self._group_acks: GroupCommit[tuple[int, str], None] = GroupCommit(
            db, "messages.ack_c2g", _ack_c2g, lanes=2, lane=lambda item: item[1], max_items=1024)

    # one-to-one -----------------------------------------------------------
    def send_c2c(self, from_uid: int, to_uid: int, msg_id: str, payload: str, created_at: int,
                 done: Callable[[bool, Any], None] | None = None) -> Stored | None:
        """Store a message idempotently by id; a resend returns the first copy.

        With `done`, returns at once and calls `done(True, stored)` or
        `done(False, error)` after the commit; one sender's messages are
        stored and reported in the order they were given.
        """
        item = (from_uid, to_uid, msg_id, payload, created_at)
        if done is None:
            return self._sends.run(item)
        self._sends.submit(item, done)
        return None

    def _store_c2c(self, tx: Tx, items: Sequence[tuple]) -> list[Stored | ImboyError]:
        """A batch of sends in two statements and the commit, whatever its size (and
        now and then a count of the recipients' pending messages)."""
        stored, friends = repo.stored_and_friendships(
            tx, list({item[2] for item in items}), list({(item[0], item[1]) for item in items}))
        server_ts = clock.server_ts()
        outcomes: list[Stored | ImboyError] = []
        new_rows: list[dict[str, Any]] = []
        for from_uid, to_uid, msg_id, payload, created_at in items:
            existing = stored.get(msg_id)
            if existing is not None:
                # A resend (also within this batch): the first copy stands.
                if existing["from_id"] != from_uid or existing["to_id"] != to_uid:
                    outcomes.append(BadRequest("Message id already used"))
                else:
                    outcomes.append(Stored(existing, False, [to_uid]))
                continue
            if (from_uid, to_uid) not in friends:
                outcomes.append(BadRequest("Not friends: the message was not sent"))
                continue
            row = {"msg_id": msg_id, "from_id": from_uid, "to_id": to_uid, "payload": payload,
                   "created_at": created_at, "server_ts": server_ts, "status": repo.PENDING}
            stored[msg_id] = row
            new_rows.append(row)
            outcomes.append(Stored(row, True, [to_uid]))
        if new_rows:
            repo.insert_c2c_many(tx, new_rows)
            self._bound_pending(tx, new_rows)
        return outcomes

    def _bound_pending(self, tx: Tx, new_rows: list[dict[str, Any]]) -> None:
        """Keep at most `pending_limit` pending messages per recipient, counting rarely.

        Counting a recipient's pending messages on every send costs a
        statement per batch; instead this process remembers, per recipient,
        how much room the last count left and spends it: acks only make more
        room, so the figure is a lower bound here.  Other workers spend the
        same room unseen, so with several the store can pass the limit by
        what they stored since this worker's count, until one of them counts
        again; what a client receives at connect is bounded exactly (pending).
        """
        added: dict[int, int] = {}
        for row in new_rows:
            added[row["to_id"]] = added.get(row["to_id"], 0) + 1
        room = self._room
        recount = []
        for to_uid, n in added.items():
            left = room.get(to_uid, 0) - n
            if left >= 0:
                room[to_uid] = left
            else:
                recount.append(to_uid)
        if not recount:
            return
        if len(room) > ROOM_ENTRIES:
            room.clear()
        counts = repo.pending_counts(tx, recount)
        for to_uid in recount:
            n = counts.get(to_uid, 0)
            if n > self.pending_limit:
                repo.drop_oldest_pending(tx, to_uid, n - self.pending_limit)
                n = self.pending_limit
            room[to_uid] = self.pending_limit - n

    def ack_c2c_later(self, uid: int, msg_id: str, done: Callable[[bool, Any], None]) -> None:
        """Remove `msg_id` from `uid`'s pending store, without waiting: `done(True, found)` (found:
        the message was `uid`'s; acked before counts) or `done(False, error)` after the commit."""
        self._acks.submit((uid, msg_id), done)

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
            server_ts = clock.server_ts()
            members = repo.insert_c2g_to_members(tx, msg_id, from_uid, gid, payload, created_at, server_ts)
            if members is None:
                # Nothing written: a resend (answered as the first time, even
                # after the sender left), an id in use, or not a member.
                existing = repo.c2g_by_msg_id(tx, msg_id)
                if existing is None:
                    raise Refused("Not a member of this group")
                if existing["from_id"] != from_uid or existing["to_groupid"] != gid:
                    raise BadRequest("Message id already used")
                return Stored(existing, False, [])
            row = {"msg_id": msg_id, "from_id": from_uid, "to_groupid": gid, "payload": payload,
                   "created_at": created_at, "server_ts": server_ts}
            return Stored(row, True, members)

        return self.db.run("messages.send_c2g", store)

    def ack_c2g_later(self, uid: int, msg_id: str, done: Callable[[bool, Any], None]) -> None:
        """Remove `uid`'s pending entry for a group message (none: nothing to do), without waiting."""
        self._group_acks.submit((uid, msg_id), done)

    # the pending store --------------------------------------------------
    def load_pending_many(self, tx: Tx, uids: Sequence[int]) -> dict[int, list[tuple[str, dict[str, Any]]]]:
        """For each of `uids`, everything it has not acked, oldest first, as ("C2C"|"C2G", row),
        in the caller's transaction; over the pending limit the oldest are dropped.

        Three statements for the whole batch in the usual case: the counts, then
        the messages of every user under the limit; a user at the limit is read
        (and trimmed) alone.
        """
        uids = list(dict.fromkeys(uids))
        limit = self.pending_limit
        c2c_counts, c2g_counts = repo.pending_counts_both(tx, uids)
        c2c: dict[int, list[dict[str, Any]]] = {}
        c2g: dict[int, list[dict[str, Any]]] = {}
        few = [uid for uid, n in c2c_counts.items() if n < limit]
        for row in repo.pending_c2c_of(tx, few) if few else ():
            c2c.setdefault(int(row["to_id"]), []).append(row)
        few = [uid for uid, n in c2g_counts.items() if n < limit]
        for row in repo.pending_c2g_of(tx, few) if few else ():
            c2g.setdefault(int(row.pop("member")), []).append(row)
        for uid, n in c2c_counts.items():
            if n >= limit:
                c2c[uid] = repo.newest_pending_c2c(tx, uid, limit)
                # Over the limit (several workers stored at once): the oldest go.
                repo.drop_pending_before(tx, uid, c2c[uid][0]["id"])
        for uid, n in c2g_counts.items():
            if n >= limit:
                c2g[uid] = repo.pending_c2g(tx, uid, limit)
                # Over the limit, the oldest group messages go, as for C2C.
                repo.trim_c2g(tx, uid, c2g[uid][0]["tid"])
        out: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for uid in uids:
            one = [("C2C", r) for r in c2c.get(uid, ())]
            group = [("C2G", r) for r in c2g.get(uid, ())]
            out[uid] = sorted(one + group, key=lambda kr: (kr[1]["server_ts"], kr[1]["id"])) if group else one
        return out

    def pending_c2c_since(self, uid: int, last_server_ts: int) -> list[dict[str, Any]]:
        return self.db.run("messages.pending_since", repo.pending_c2c, uid, last_server_ts, self.pending_limit)


def _ack_c2c(tx: Tx, items: Sequence[tuple[int, str]]) -> list[bool]:
    """A batch of one-to-one acks: one UPDATE.  Only when some ack matched no pending message
    (acked before, dropped, unknown or not the acker's) does a SELECT tell which were the
    acker's: acked before counts as found, since an ack is idempotent."""
    acks = list(set(items))
    if repo.ack_c2c_many(tx, acks) == len(acks):
        return [True] * len(items)
    to = repo.recipients_of(tx, list({msg_id for _, msg_id in acks}))
    return [to.get(msg_id) == uid for uid, msg_id in items]


def _ack_c2g(tx: Tx, items: Sequence[tuple[int, str]]) -> list[None]:
    # In the unique key's order (msg_id, member): batches of several processes
    # lock their rows in one order.
    repo.ack_c2g_many(tx, sorted(set(items), key=lambda ack: (ack[1], ack[0])))
    return [None] * len(items)
