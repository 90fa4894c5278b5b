// The open conversation: header, message list (updated one message at a
// time as frames arrive) and the composer.

import { $, avatar, clear, displayName, formatTime, h } from "./dom.js";
import { payloadText, retry, revoke, sendText } from "./messaging.js";
import { groupOf, on, person, splitKey, state } from "./state.js";

const MARKS = {
  sending: ["◌", "Sending"],
  sent: ["✓", "Sent: stored by the server"],
  delivered: ["✓✓", "Delivered to your friend's web client"],
  failed: ["!", "Not sent"],
};

let openKey = null;

export function renderConversation(view, key) {
  openKey = key;
  const [kind, id] = splitKey(key);
  const list = h("ol.messages", { id: "messages", "aria-live": "polite" });
  const input = h("textarea", {
    name: "text", rows: 1, placeholder: "Message", "aria-label": "Message", maxlength: 10000, id: "composer-input",
  });
  const form = h("form.composer", { id: "composer", autocomplete: "off" }, input,
    h("button.primary", { type: "submit", id: "send-button" }, "Send"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    sendText(key, text);
    input.value = "";
    autosize(input);
    input.focus();
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", () => autosize(input));

  clear(view, h("div.conversation", { dataset: { key } }, header(kind, id), list, form));
  for (const msg of state.store.messages(key)) list.append(messageNode(msg, key));
  list.scrollTop = list.scrollHeight;
  markRead(key);
  if (matchMedia("(min-width: 721px)").matches) input.focus();
}

export function closeConversation() {
  openKey = null;
}

function header(kind, id) {
  const back = h("a.back", { href: "#/" + (state.tab || "chats"), "aria-label": "Back" }, "‹");
  if (kind === "g") {
    const group = groupOf(id) || { id, groupname: "Group" };
    const member = state.groups.has(id) || !state.formerGroups.has(id); // unknown yet: assume member
    return h("header.pane-head", {}, back, avatar(group),
      h("a.head-text", { href: `#/group/${id}`, title: "Group members" },
        h("strong#conv-title", {}, group.groupname || "Group"),
        h("small#conv-status", { dataset: { status: member ? "member" : "left" } },
          member ? "Group chat" : "You are no longer a member")));
  }
  const user = person(id) || { id, nickname: id };
  const status = presenceOf(id);
  return h("header.pane-head", {}, back,
    h("span.avatar-wrap", {}, avatar(user), h("span.presence", { class: status })),
    h("a.head-text", { href: `#/friend/${id}`, title: "Profile" },
      h("strong#conv-title", {}, displayName(user)),
      h("small#conv-status", { dataset: { status } }, PRESENCE_LABELS[status])));
}

const PRESENCE_LABELS = {
  online: "online", offline: "offline", unknown: "presence unknown while you are offline",
  stranger: "not your friend",
};

function presenceOf(id) {
  const friend = state.friends.get(id);
  if (!friend) return state.people.has(id) ? "stranger" : "unknown"; // a former friend, or not loaded yet
  return PRESENCE_LABELS[friend.status] ? friend.status : "offline";
}

function autosize(input) {
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, 160) + "px";
}

function markRead(key) {
  const conv = state.store.conv(key);
  if (conv && conv.unread) {
    state.store.touch(key, { unread: 0 });
    document.dispatchEvent(new Event("imboy:unread"));
  }
}

function messageNode(msg, key) {
  const [kind] = splitKey(key);
  const li = h("li.msg", { class: msg.mine ? "mine" : "theirs", dataset: { id: msg.id, status: msg.status || "" } });
  const sender = msg.mine ? null : person(msg.from);
  if (msg.revoked) {
    li.classList.add("revoked");
    li.append(h("span.placeholder", {},
      msg.mine ? "You revoked a message" : `${displayName(sender) || "Your friend"} revoked a message`));
    return li;
  }
  const bubble = h("div.bubble");
  if (kind === "g" && !msg.mine) bubble.append(h("span.sender", {}, displayName(sender) || msg.from));
  bubble.append(h("span.text", {}, payloadText(msg.payload)));
  const meta = h("span.meta", {}, h("time", { datetime: new Date(msg.created_at || 0).toISOString() },
    formatTime(msg.created_at)));
  if (msg.mine) {
    const [mark, title] = MARKS[msg.status] || MARKS.sending;
    meta.append(h("span.mark", { class: msg.status, title, "aria-label": title }, mark));
  }
  bubble.append(meta);
  li.append(bubble);
  if (msg.mine && msg.status === "failed") {
    li.append(h("div.msg-error", {}, msg.error || "Not sent", " ",
      h("button.link-button", { type: "button", onclick: () => retry(key, msg.id) }, "Retry")));
  } else if (msg.mine && kind === "c" && (msg.status === "sent" || msg.status === "delivered")) {
    li.append(h("button.msg-action.revoke", { type: "button", title: "Revoke this message",
      onclick: () => revoke(key, msg.id) }, "Revoke"));
  }
  return li;
}

on("message", ({ key, msg }) => {
  if (key !== openKey) return;
  const list = $("#messages");
  if (!list) return;
  const node = messageNode(msg, key);
  const old = list.querySelector(`li[data-id="${CSS.escape(msg.id)}"]`);
  if (old) {
    old.replaceWith(node);
    return;
  }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(node);
  if (atBottom || msg.mine) list.scrollTop = list.scrollHeight;
  if (document.visibilityState === "visible") markRead(key);
});

// A name learnt later (a group member who is not a friend, a group's name):
// redraw the open conversation's header and messages.
function redraw() {
  const list = $("#messages");
  if (!openKey || !list) return;
  const [kind, id] = splitKey(openKey);
  for (const li of list.querySelectorAll("li.msg")) {
    const msg = state.store.find(openKey, li.dataset.id);
    if (msg) li.replaceWith(messageNode(msg, openKey));
  }
  const head = $(".conversation .pane-head");
  if (head) head.replaceWith(header(kind, id));
}
on("people", redraw);
on("groups", () => openKey && openKey.startsWith("g:") && redraw());

// Presence of the open one-to-one peer changes live.
on("friends", () => {
  if (!openKey || !openKey.startsWith("c:")) return;
  const id = splitKey(openKey)[1];
  const label = $("#conv-status");
  const dot = $(".pane-head .presence");
  const status = presenceOf(id);
  if (label) {
    label.textContent = PRESENCE_LABELS[status];
    label.dataset.status = status;
  }
  if (dot) dot.className = "presence " + status;
});

document.addEventListener("visibilitychange", () => {
  if (openKey && document.visibilityState === "visible") markRead(openKey);
});
