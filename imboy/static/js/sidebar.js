// The sidebar: who I am, the connection dot, and the four lists (recent
// chats, friends with presence dots, groups, friend requests).

import { $, avatar, clear, displayName, formatTime, h } from "./dom.js";
import { groupOf, splitKey, state } from "./state.js";

export function renderMe() {
  const me = state.me;
  clear($("#me-avatar"), avatar({ id: me.uid, nickname: me.nickname || me.account, avatar: me.avatar }));
  $("#me-name").textContent = me.nickname || me.account || "Me";
  $("#me-sign").textContent = me.sign || (state.myState === "hide" ? "Invisible" : "Set a signature");
}

export function renderBadges() {
  let unread = 0;
  for (const c of state.store.recent()) unread += c.unread || 0;
  const u = $("#unread-total");
  u.textContent = unread > 99 ? "99+" : String(unread);
  u.hidden = unread === 0;
  const r = $("#request-count");
  r.textContent = String(state.requests.length);
  r.hidden = state.requests.length === 0;
  document.title = (unread ? `(${unread}) ` : "") + "imboy chat";
}

export function renderList() {
  const tab = state.tab || "chats";
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.tab === tab);
  const list = $("#list");
  list.dataset.tab = tab;
  const tools = $("#list-tools");
  const render = { chats: chats, friends: friends, groups: groups, requests: requests }[tab] || chats;
  render(list, tools);
  renderBadges();
}

function presenceDot(id) {
  const status = state.friends.get(id)?.status || "unknown";
  return h("span.presence", { class: status, title: status === "unknown" ? "presence unknown" : status });
}

function activeKey() {
  return state.route.name === "conv" ? state.route.arg : "";
}

function empty(text, ...extra) {
  return h("li.empty", {}, text, ...extra);
}

function chats(list, tools) {
  clear(tools);
  const items = state.store.recent().map((c) => {
    const [kind, id] = splitKey(c.key);
    const who = kind === "c" ? state.friends.get(id) || state.people.get(id) || { id } : groupOf(id) || { id, groupname: "Group" };
    const title = kind === "c" ? displayName(who) || id : who.groupname || "Group";
    return h("li", {},
      h("a.item", { href: `#/${kind}/${id}`, class: c.key === activeKey() ? "active" : "", dataset: { key: c.key } },
        h("span.avatar-wrap", {}, avatar(who), kind === "c" ? presenceDot(id) : null),
        h("span.item-text", {}, h("strong", {}, title), h("small", {}, c.preview || "")),
        h("span.item-side", {}, h("time", {}, formatTime(c.ts)),
          c.unread ? h("span.badge.unread", {}, String(c.unread)) : null)));
  });
  clear(list, items.length ? items : empty("No chats yet. Open a friend to start one.", " ",
    h("a", { href: "#/friends" }, "Friends")));
}

function friends(list, tools) {
  clear(tools, h("a.button", { href: "#/find" }, "Find people"));
  const all = [...state.friends.values()].sort((a, b) =>
    (a.status === "online" ? 0 : 1) - (b.status === "online" ? 0 : 1) ||
    displayName(a).localeCompare(displayName(b)));
  const items = all.map((f) =>
    h("li", {},
      h("a.item", { href: `#/c/${f.id}`, class: "c:" + f.id === activeKey() ? "active" : "",
        dataset: { id: f.id, status: f.status } },
        h("span.avatar-wrap", {}, avatar(f), presenceDot(f.id)),
        h("span.item-text", {}, h("strong", {}, displayName(f)), h("small", {}, f.sign || f.account || ""))),
      h("a.info-link", { href: `#/friend/${f.id}`, title: "Profile", "aria-label": "Profile of " + displayName(f) }, "i")));
  clear(list, items.length ? items : empty("No friends yet.", " ", h("a", { href: "#/find" }, "Find people")));
}

function groups(list, tools) {
  clear(tools, h("a.button", { href: "#/newgroup", id: "new-group-link" }, "New group"));
  const items = [...state.groups.values()].map((g) =>
    h("li", {},
      h("a.item", { href: `#/g/${g.id}`, class: "g:" + g.id === activeKey() ? "active" : "", dataset: { id: g.id } },
        avatar(g), h("span.item-text", {}, h("strong", {}, g.groupname || "Group"), h("small", {}, "Group")))));
  clear(list, items.length ? items : empty("No groups yet."));
}

// `accept(uid)` is supplied by the app (it calls the API).
export let onAccept = () => {};
export function setAcceptHandler(fn) {
  onAccept = fn;
}

function requests(list, tools) {
  clear(tools);
  const items = state.requests.map((r) => {
    const from = r.from || {};
    const button = h("button.primary.small", { type: "button", dataset: { uid: from.id } }, "Accept");
    button.addEventListener("click", () => {
      button.disabled = true;
      onAccept(from.id).finally(() => (button.disabled = false));
    });
    return h("li.request", { dataset: { uid: from.id } },
      avatar(from),
      h("span.item-text", {}, h("strong", {}, displayName(from)),
        h("small", {}, r.msg || "wants to be your friend")),
      button);
  });
  clear(list, items.length ? items : empty("No friend requests."));
}
