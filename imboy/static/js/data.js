// Lists fetched over HTTP: friends with presence, groups, friend requests,
// and profiles of people who are not friends (group members).

import * as api from "./api.js";
import { toast } from "./dom.js";
import { emit, state } from "./state.js";

function report(what, err) {
  if (err instanceof api.ApiError && err.code === 706) return; // the app logs out
  console.warn(`imboy: could not load ${what}:`, err);
  if (err instanceof api.ApiError && err.code === 2) toast(err.message, "error");
}

const asList = (p, ...keys) => {
  if (Array.isArray(p)) return p;
  for (const k of keys) if (p && Array.isArray(p[k])) return p[k];
  return [];
};

export async function loadFriends() {
  try {
    const p = await api.get("/friend/list");
    const before = state.friends;
    state.friends = new Map(asList(p, "friend").map((f) => [f.id, { ...f, status: f.status === "online" ? "online" : "offline" }]));
    if (p && p.mine && p.mine.status === "hide") state.myState = "hide";
    // A friendship that ended: keep the name for the chat history that stays.
    let gone = false;
    for (const [id, old] of before) {
      if (state.friends.has(id)) continue;
      const { status, ...profile } = old;
      state.people.set(id, profile);
      gone = true;
    }
    emit("friends");
    if (gone) emit("people");
  } catch (err) {
    report("friends", err);
  }
}

export async function loadGroups() {
  try {
    const p = await api.get("/friend/myfriend");
    const before = state.groups;
    state.groups = new Map(asList(p, "group").map((g) => [g.id, g]));
    // A group left or dissolved: keep its name for the chat history that stays.
    for (const [id, old] of before) if (!state.groups.has(id)) state.formerGroups.set(id, old);
    for (const id of state.groups.keys()) state.formerGroups.delete(id);
    emit("groups");
  } catch (err) {
    report("groups", err);
  }
}

export async function loadRequests() {
  try {
    const p = await api.get("/conversation/msgbox");
    const friends = state.friends;
    // A request from someone who is a friend already needs no answer.
    state.requests = asList(p, "apply").filter((r) => r && r.from && !friends.has(r.from.id));
    emit("requests");
  } catch (err) {
    report("friend requests", err);
  }
}

export function loadAll() {
  return Promise.all([loadFriends().then(loadRequests), loadGroups()]);
}

const asked = new Set();

// Names for ids seen in messages: a profile for a user, the group list for a group.
export async function lookup(uid, gid) {
  if (gid && !state.groups.has(gid) && !asked.has("g:" + gid)) {
    asked.add("g:" + gid);
    await loadGroups();
  }
  if (uid && !state.friends.has(uid) && !state.people.has(uid) && !asked.has(uid)) {
    asked.add(uid);
    try {
      state.people.set(uid, await api.get("/user/open_info", { id: uid }));
      emit("people");
    } catch (err) {
      asked.delete(uid);
      report("a profile", err);
    }
  }
}
