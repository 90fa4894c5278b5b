// What the page knows, in one place, and a tiny event bus: the messaging and
// data modules change the state and `emit` what changed; the views listen.

export const state = {
  me: null, // the session: {uid, nickname, account, sign, avatar, ...}
  store: null, // Store of this user's history and outbox
  socket: null, // ChatSocket
  conn: { state: "stopped", retryAt: 0 },
  friends: new Map(), // hashid -> user + status ("online" | "offline")
  groups: new Map(), // group hashid -> {id, groupname, avatar}
  requests: [], // [{from: user, msg, created_at}]
  people: new Map(), // hashid -> user, for names of non-friends (group members, former friends)
  formerGroups: new Map(), // group hashid -> group, for names of groups I left or that were dissolved
  myState: "online", // presence chosen by the user: online | hide
  route: { name: "chats", arg: "" },
  revoking: new Map(), // message id -> conversation key, until confirmed or refused
};

const bus = new EventTarget();

export function emit(what, detail = {}) {
  bus.dispatchEvent(new CustomEvent(what, { detail }));
}

export function on(what, fn) {
  bus.addEventListener(what, (ev) => fn(ev.detail));
}

export function person(id) {
  return state.friends.get(id) || state.people.get(id) || (state.me && id === state.me.uid ? meAsUser() : null);
}

export function meAsUser() {
  const m = state.me;
  return { id: m.uid, nickname: m.nickname, account: m.account, avatar: m.avatar, sign: m.sign };
}

export function groupOf(id) {
  return state.groups.get(id) || state.formerGroups.get(id) || null;
}

// The conversation key of a route or frame: "c:<user>" or "g:<group>".
export function splitKey(key) {
  const i = key.indexOf(":");
  return [key.slice(0, i), key.slice(i + 1)];
}
