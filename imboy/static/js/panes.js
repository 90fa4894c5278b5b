// The other views of the main pane: find people, my profile and settings,
// a friend's profile, a new group, a group's members, and the placeholder.

import * as api from "./api.js";
import { avatar, clear, displayName, h, toast } from "./dom.js";
import { loadFriends, loadGroups } from "./data.js";
import { emit, groupOf, meAsUser, state } from "./state.js";
import * as session from "./session.js";

function head(title, backTo) {
  return h("header.pane-head", {},
    h("a.back", { href: "#/" + (backTo || state.tab || "chats"), "aria-label": "Back" }, "‹"),
    h("span.head-text", {}, h("strong", {}, title)));
}

function failed(err) {
  if (!(err instanceof api.ApiError && err.code === 706)) toast(err.message || "Request failed", "error");
}

// Disable a button while `fn` runs.
async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    failed(err);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function renderPlaceholder(view) {
  clear(view, h("div.placeholder-pane", {},
    h("div.logo.big", { "aria-hidden": "true" }, "im"),
    h("p", {}, "Pick a chat, or find people with the + button."),
    h("p.small", {}, "Messages are kept in this browser; the server keeps them only until delivered.")));
}

export function renderFind(view) {
  const keyword = h("input", { name: "keyword", type: "search", placeholder: "Email, account number or nickname",
    "aria-label": "Search", required: true, id: "find-keyword" });
  const note = h("input", { name: "msg", placeholder: "Message with your request (optional)", maxlength: 200,
    "aria-label": "Message with your request", id: "find-msg" });
  const results = h("ul.list.results", { id: "find-results" });
  const submit = h("button.primary", { type: "submit" }, "Search");
  const form = h("form.search", { id: "find-form" }, keyword, submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = keyword.value.trim();
    if (!q) return;
    busy(submit, async () => {
      const p = await api.get("/friend/find", { keyword: q });
      const users = Array.isArray(p) ? p : (p && (p.list || p.friend || p.users)) || [];
      clear(results, users.length ? users.map((u) => resultItem(u, note)) : h("li.empty", {}, "Nobody found."));
    });
  });
  clear(view, h("div.panel", {}, head("Find people", "friends"),
    h("div.panel-body", {}, form, note, results)));
  keyword.focus();
}

function resultItem(user, note) {
  let action;
  if (state.friends.has(user.id)) {
    action = h("a.button.small", { href: `#/c/${user.id}` }, "Message");
  } else {
    action = h("button.primary.small", { type: "button", dataset: { uid: user.id } }, "Add friend");
    action.addEventListener("click", () => busy(action, async () => {
      await api.post("/friend/apply", { uid: user.id, msg: note.value.trim() });
      action.replaceWith(h("span.done", {}, "Request sent"));
    }));
  }
  return h("li.person", { dataset: { uid: user.id } }, avatar(user),
    h("span.item-text", {}, h("strong", {}, displayName(user)), h("small", {}, `#${user.account || ""} ${user.sign || ""}`)),
    action);
}

export function renderMe(view) {
  const me = state.me;
  const sign = h("input", { name: "sign", value: me.sign || "", maxlength: 255, placeholder: "What's on your mind?",
    "aria-label": "Signature", id: "sign-input" });
  const save = h("button.primary", { type: "submit" }, "Save");
  const signForm = h("form.inline", { id: "sign-form" }, sign, save);
  signForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(save, async () => {
      await api.post("/user/change_sign", { sign: sign.value });
      state.me = session.update({ sign: sign.value }) || state.me;
      emit("me");
      toast("Signature saved");
    });
  });
  const choice = (value, label, help) =>
    h("label.choice", {}, h("input", { type: "radio", name: "presence", value, checked: state.myState === value }),
      h("span", {}, h("strong", {}, label), h("small", {}, help)));
  const presence = h("fieldset.presence-choice", { id: "presence-form" }, h("legend", {}, "Presence"),
    choice("online", "Online", "Friends see when you are connected"),
    choice("hide", "Invisible", "Friends always see you offline"));
  presence.addEventListener("change", async (ev) => {
    const value = ev.target.value;
    try {
      await api.post("/user/change_state", { state: value });
      state.myState = value;
      session.update({ state: value });
      emit("me");
      toast(value === "hide" ? "You now appear offline" : "You now appear online");
    } catch (err) {
      failed(err);
      for (const r of presence.querySelectorAll("input")) r.checked = r.value === state.myState;
    }
  });
  const logout = h("button.danger", { type: "button", id: "logout-button" }, "Log out");
  logout.addEventListener("click", () => document.dispatchEvent(new Event("imboy:logout")));
  clear(view, h("div.panel", {}, head("Profile and settings"),
    h("div.panel-body", {},
      h("div.profile", {}, avatar(meAsUser(), "large"),
        h("div", {}, h("h2", {}, me.nickname || me.account),
          h("p.small", {}, `Account ${me.account || ""}`), h("p.small", {}, `ID ${me.uid}`))),
      h("h3", {}, "Signature"), signForm, presence, h("div.actions", {}, logout))));
}

export async function renderFriend(view, id) {
  const friend = state.friends.get(id);
  clear(view, h("div.panel", {}, head("Profile", "friends"), h("div.panel-body", {}, h("p.small", {}, "Loading…"))));
  let user = friend;
  try {
    user = { ...(await api.get("/user/open_info", { id })), ...(friend || {}) };
  } catch (err) {
    if (!friend) return failed(err);
  }
  const online = friend && friend.status === "online";
  const actions = h("div.actions");
  if (friend) {
    const remove = h("button.danger", { type: "button", id: "remove-friend" }, "Remove friend");
    remove.addEventListener("click", () => {
      if (!confirm(`Remove ${displayName(user)} from your friends?`)) return;
      busy(remove, async () => {
        await api.post("/friend/delete", { uid: id });
        await loadFriends();
        location.hash = "#/friends";
      });
    });
    actions.append(h("a.button.primary", { href: `#/c/${id}` }, "Send message"), remove);
  }
  clear(view, h("div.panel", {}, head("Profile", "friends"),
    h("div.panel-body", {},
      h("div.profile", {}, avatar(user, "large"),
        h("div", {}, h("h2", {}, displayName(user)),
          friend ? h("p.small", {}, h("span.presence.inline", { class: online ? "online" : "offline" }),
            online ? " online" : " offline") : null,
          h("p.small", {}, `Account ${user.account || ""}`),
          user.sign ? h("p", {}, user.sign) : null)),
      actions)));
}

export function renderNewGroup(view) {
  const name = h("input", { name: "name", required: true, maxlength: 80, placeholder: "Group name",
    "aria-label": "Group name", id: "group-name" });
  const friends = [...state.friends.values()].sort((a, b) => displayName(a).localeCompare(displayName(b)));
  const boxes = friends.map((f) =>
    h("li", {}, h("label.choice", {}, h("input", { type: "checkbox", name: "uids", value: f.id }),
      avatar(f), h("span", {}, displayName(f)))));
  const create = h("button.primary", { type: "submit" }, "Create group");
  const form = h("form.stack", { id: "group-form" }, name,
    h("p.small", {}, "Members"), h("ul.checklist", {}, boxes.length ? boxes : h("li.empty", {}, "Add friends first.")),
    create);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const uids = [...form.querySelectorAll("input[name=uids]:checked")].map((b) => b.value);
    if (!name.value.trim()) return toast("Give the group a name", "error");
    busy(create, async () => {
      const g = await api.post("/group/create", { name: name.value.trim(), uids: uids.join(",") });
      state.groups.set(g.id, { id: g.id, groupname: g.groupname });
      emit("groups");
      loadGroups();
      location.hash = `#/g/${g.id}`;
    });
  });
  clear(view, h("div.panel", {}, head("New group", "groups"), h("div.panel-body", {}, form)));
  name.focus();
}

export async function renderGroup(view, id) {
  const group = groupOf(id) || { id, groupname: "Group" };
  const list = h("ul.list.members", {}, h("li.empty", {}, "Loading…"));
  const leave = h("button.danger", { type: "button", id: "leave-group" }, "Leave group");
  leave.addEventListener("click", () => {
    if (!confirm(`Leave ${group.groupname}?`)) return;
    busy(leave, async () => {
      await api.post("/group/leave", { id });
      state.formerGroups.set(id, group);
      state.groups.delete(id);
      emit("groups");
      location.hash = "#/groups";
    });
  });
  clear(view, h("div.panel", {}, head(group.groupname || "Group", "groups"),
    h("div.panel-body", {}, h("a.button.primary", { href: `#/g/${id}` }, "Open chat"),
      h("h3", {}, "Members"), list, h("div.actions", {}, leave))));
  try {
    const p = await api.get("/group/member", { id });
    const members = Array.isArray(p) ? p : (p && p.list) || [];
    clear(list, members.map((m) => {
      state.people.set(m.id, state.people.get(m.id) || m);
      return h("li.person", { dataset: { uid: m.id } }, avatar(m), h("span.item-text", {},
        h("strong", {}, m.alias || displayName(m)), h("small", {}, m.role === 4 ? "owner" : m.sign || "")));
    }));
  } catch (err) {
    clear(list, h("li.empty", {}, err.message || "Could not load the members"));
  }
}
