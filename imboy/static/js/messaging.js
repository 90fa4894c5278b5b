// Frames in and out (PROTOCOL section 4): send, acknowledge, deduplicate,
// revoke, and the delivery receipts behind the "delivered" mark.
//
// Marks on one's own one-to-one messages:
//   sending  (clock)  queued in the outbox, not yet stored by the server
//   sent     ✓        C2C_SERVER_ACK: the server stored it durably
//   delivered ✓✓      the peer's *web client* stored it and sent its ack
// The server forwards nothing to the sender when the recipient acks, so the
// recipient's web client, right after its C2C_CLIENT_ACK, also sends the
// sender an ordinary C2C message whose payload is
//   {"msg_type": "custom", "custom_type": "delivered", "ids": [...]}
// It does so only for messages whose payload asked with "want_receipt": true,
// which this client sets and other clients do not, so a peer on another
// client never receives receipts it cannot show, and those messages honestly
// stay at ✓.  Group messages show ✓ only.

import { newId, toast } from "./dom.js";
import { emit, person, splitKey, state } from "./state.js";

const RECEIPT_DELAY_MS = 150;
const RECEIPT_BATCH = 100;
const receipts = new Map(); // peer hashid -> Set of message ids
let receiptTimer = null;
let lookups = null; // called with ids of users/groups we know nothing about

export function onUnknown(fn) {
  lookups = fn;
}

export const isObject = (p) => p !== null && typeof p === "object" && !Array.isArray(p);
export const isRevoked = (p) => isObject(p) && p.msg_type === "custom" && p.custom_type === "revoked";
const isReceipt = (p) =>
  isObject(p) && p.msg_type === "custom" && p.custom_type === "delivered" && Array.isArray(p.ids);

// What a payload shows as text, for the message list and previews.
export function payloadText(p) {
  if (typeof p === "string") return p;
  if (!isObject(p)) return "";
  if (p.msg_type === "text") return String(p.text ?? p.content ?? "");
  if (isRevoked(p)) return "Message revoked";
  const kind = String(p.msg_type || "message");
  return `[${kind}]` + (p.uri || p.url ? " " + (p.uri || p.url) : "");
}

function preview(msg) {
  if (msg.revoked) return "Message revoked";
  const text = payloadText(msg.payload);
  if (msg.key && msg.key.startsWith("g:") && !msg.mine) {
    const who = person(msg.from);
    return (who ? (who.remark || who.nickname || who.account) + ": " : "") + text;
  }
  return text;
}

function viewing(key) {
  return state.route.name === "conv" && state.route.arg === key && document.visibilityState === "visible";
}

function remember(key, msg) {
  msg.key = key;
  if (!state.store.add(key, msg)) return false;
  const conv = state.store.conv(key) || {};
  state.store.touch(key, {
    ts: Date.now(),
    preview: preview(msg),
    unread: msg.mine || viewing(key) ? 0 : (conv.unread || 0) + 1,
  });
  emit("message", { key, msg });
  emit("convs");
  return true;
}

function changed(key, id, patch) {
  const msg = state.store.update(key, id, patch);
  if (msg) {
    const conv = state.store.conv(key);
    const list = state.store.messages(key);
    if (conv && list[list.length - 1] === msg) state.store.touch(key, { preview: preview(msg) });
    emit("message", { key, msg });
    emit("convs");
  }
  return msg;
}

// ---- sending ------------------------------------------------------------

export function sendText(key, text) {
  const [kind, target] = splitKey(key);
  const id = newId();
  const created_at = Date.now();
  const payload = { msg_type: "text", text };
  if (kind === "c") payload.want_receipt = true;
  const frame = { id, type: kind === "c" ? "C2C" : "C2G", to: target, payload, created_at };
  state.store.queue(id, frame, key);
  remember(key, { id, from: state.me.uid, to: target, payload, created_at, mine: true, status: "sending" });
  state.socket.send(frame); // offline: it stays in the outbox until the next connect
}

// Resend what the server has not acknowledged (it deduplicates by id).
export function flushOutbox() {
  for (const entry of state.store.queued()) {
    if (!state.socket.send(entry.frame)) return;
  }
  flushReceipts();
}

export function retry(key, id) {
  const msg = state.store.find(key, id);
  if (!msg || !msg.mine) return;
  const [kind, target] = splitKey(key);
  const frame = { id, type: kind === "c" ? "C2C" : "C2G", to: target, payload: msg.payload, created_at: msg.created_at };
  state.store.queue(id, frame, key);
  changed(key, id, { status: "sending", error: "" });
  state.socket.send(frame);
}

export function revoke(key, id) {
  const [kind, peer] = splitKey(key);
  const msg = state.store.find(key, id);
  if (kind !== "c" || !msg || !msg.mine || msg.revoked) return;
  if (!state.socket.send({ id, type: "C2C_REVOKE", to: peer })) {
    toast("You are offline: revoke once the connection is back", "error");
    return;
  }
  state.revoking.set(id, key);
  changed(key, id, { revoked: true, revokePending: true });
}

function queueReceipt(peer, id) {
  if (!receipts.has(peer)) receipts.set(peer, new Set());
  receipts.get(peer).add(id);
  clearTimeout(receiptTimer);
  receiptTimer = setTimeout(flushReceipts, RECEIPT_DELAY_MS);
}

function flushReceipts() {
  clearTimeout(receiptTimer);
  for (const [peer, set] of receipts) {
    const ids = [...set];
    for (let i = 0; i < ids.length; i += RECEIPT_BATCH) {
      const id = newId();
      const payload = { msg_type: "custom", custom_type: "delivered", ids: ids.slice(i, i + RECEIPT_BATCH) };
      const frame = { id, type: "C2C", to: peer, payload, created_at: Date.now() };
      state.store.queue(id, frame, null); // kept until the server stored it
      state.socket.send(frame);
    }
  }
  receipts.clear();
}

// ---- receiving ----------------------------------------------------------

export function onFrame(f) {
  const type = String(f.type || "").toUpperCase();
  switch (type) {
    case "C2C":
      return onC2C(f);
    case "C2G":
    case "GROUP":
      return onC2G(f);
    case "C2C_SERVER_ACK":
    case "C2G_SERVER_ACK":
      return onServerAck(f);
    case "C2C_REVOKE":
      return onRevoke(f);
    case "C2C_REVOKE_ACK":
      return onRevokeAck(f);
    case "S2C":
      return emit("s2c", f);
    case "ERROR":
      return onError(f);
    default:
      return undefined;
  }
}

function onC2C(f) {
  if (typeof f.id !== "string" || typeof f.from !== "string") return;
  const key = "c:" + f.from;
  if (isReceipt(f.payload)) {
    for (const id of f.payload.ids.slice(0, 1000)) markDelivered(key, String(id));
  } else {
    const known = state.store.find(key, f.id);
    if (!known) {
      remember(key, {
        id: f.id, from: f.from, to: f.to, payload: f.payload, created_at: f.created_at,
        server_ts: f.server_ts, mine: false, revoked: isRevoked(f.payload),
      });
      if (!person(f.from) && lookups) lookups(f.from);
    } else if (isRevoked(f.payload) && !known.revoked) {
      changed(key, f.id, { revoked: true });
    }
  }
  // Stored locally first, then acknowledged: an ack means "I have it".
  state.socket.send({ id: f.id, type: "C2C_CLIENT_ACK" });
  if (isObject(f.payload) && f.payload.want_receipt === true && !isRevoked(f.payload)) queueReceipt(f.from, f.id);
}

function markDelivered(key, id) {
  const msg = state.store.find(key, id);
  if (!msg || !msg.mine) return;
  state.store.unqueue(id); // a receipt proves the server had it
  if (msg.status !== "delivered") changed(key, id, { status: "delivered", error: "" });
}

function onC2G(f) {
  if (typeof f.id !== "string" || typeof f.to !== "string") return;
  const key = "g:" + f.to;
  if (!state.store.find(key, f.id)) {
    remember(key, {
      id: f.id, from: f.from, to: f.to, payload: f.payload, created_at: f.created_at,
      server_ts: f.server_ts, mine: false, revoked: isRevoked(f.payload),
    });
    if (lookups && (!state.groups.has(f.to) || !person(f.from))) lookups(f.from, f.to);
  }
  state.socket.send({ id: f.id, type: "C2G_CLIENT_ACK", to: f.to });
}

function onServerAck(f) {
  const entry = state.store.unqueue(f.id);
  if (!entry || !entry.key) return;
  const msg = state.store.find(entry.key, f.id);
  if (msg && msg.status !== "delivered") changed(entry.key, f.id, { status: "sent", server_ts: f.server_ts, error: "" });
}

function onRevoke(f) {
  if (typeof f.id !== "string" || typeof f.from !== "string") return;
  const key = "c:" + f.from;
  if (state.store.find(key, f.id)) changed(key, f.id, { revoked: true });
  else remember(key, { id: f.id, from: f.from, to: f.to, payload: null, created_at: f.server_ts, mine: false, revoked: true });
  state.socket.send({ id: f.id, type: "C2C_REVOKE_ACK", to: f.from });
}

function onRevokeAck(f) {
  const key = state.revoking.get(f.id) || "c:" + f.from;
  state.revoking.delete(f.id);
  if (state.store.find(key, f.id)) changed(key, f.id, { revoked: true, revokePending: false });
}

function onError(f) {
  const id = typeof f.id === "string" ? f.id : "";
  const entry = id ? state.store.unqueue(id) : null;
  if (entry) {
    if (entry.key) changed(entry.key, id, { status: "failed", error: f.msg || "Not sent" });
    if (entry.key) toast(`Not sent: ${f.msg || "refused by the server"}`, "error");
    return;
  }
  if (id && state.revoking.has(id)) {
    const key = state.revoking.get(id);
    state.revoking.delete(id);
    changed(key, id, { revoked: false, revokePending: false });
    toast(`Could not revoke: ${f.msg || "refused"}`, "error");
    return;
  }
  // Refused acknowledgements of messages we already have need no attention.
  console.warn("imboy: server refused a frame:", f);
}
