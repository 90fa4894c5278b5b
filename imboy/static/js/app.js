// The web chat's entry point: login and sign-up, the hash routes, the
// WebSocket's life and the system events (S2C) that refresh the lists.
//
// Routes: #/login #/signup | #/chats #/friends #/groups #/requests (sidebar
// tabs) | #/c/<user> #/g/<group> (conversations) | #/find #/me
// #/friend/<user> #/newgroup #/group/<group> (other panes).

import * as api from "./api.js";
import { $, toast } from "./dom.js";
import { loadAll, loadFriends, loadGroups, loadRequests, lookup } from "./data.js";
import { closeConversation, renderConversation } from "./conversation.js";
import { flushOutbox, onFrame, onUnknown } from "./messaging.js";
import * as panes from "./panes.js";
import * as session from "./session.js";
import { renderBadges, renderList, renderMe, setAcceptHandler } from "./sidebar.js";
import { ChatSocket } from "./socket.js";
import { emit, on, person, state } from "./state.js";
import { Store } from "./store.js";

const TABS = ["chats", "friends", "groups", "requests"];

// ---- routes ---------------------------------------------------------------

function parseRoute() {
  const [name = "", arg = ""] = location.hash.replace(/^#\/?/, "").split("/");
  if (name === "c" || name === "g") return arg ? { name: "conv", arg: `${name}:${arg}` } : { name: "chats" };
  if (["login", "signup", "find", "me", "newgroup", ...TABS].includes(name)) return { name };
  if ((name === "friend" || name === "group") && arg) return { name, arg };
  return { name: "chats" };
}

function route() {
  const r = parseRoute();
  if (!state.me) {
    showAuth(r.name === "signup" ? "signup" : "login");
    return;
  }
  if (r.name === "login" || r.name === "signup") {
    location.replace("#/chats");
    return;
  }
  state.route = r;
  if (TABS.includes(r.name)) state.tab = r.name;
  else if (r.name === "find" || r.name === "friend") state.tab = state.tab || "friends";
  document.body.classList.toggle("pane-open", !TABS.includes(r.name));
  const view = $("#view");
  if (r.name !== "conv") closeConversation();
  if (r.name === "conv") renderConversation(view, r.arg);
  else if (r.name === "find") panes.renderFind(view);
  else if (r.name === "me") panes.renderMe(view);
  else if (r.name === "friend") panes.renderFriend(view, r.arg);
  else if (r.name === "newgroup") panes.renderNewGroup(view);
  else if (r.name === "group") panes.renderGroup(view, r.arg);
  else panes.renderPlaceholder(view);
  renderList();
}

// ---- login and sign-up ----------------------------------------------------

let rsaKey = null;

async function encryptPassword(pwd) {
  if (!rsaKey) rsaKey = await api.get("/init", null, { auth: false });
  if (String(rsaKey.login_pwd_rsa_encrypt) !== "1") return { pwd, rsa_encrypt: "0" };
  const rsa = new window.JSEncrypt();
  rsa.setPublicKey(rsaKey.login_rsa_pub_key);
  const encrypted = rsa.encrypt(pwd); // PKCS#1 v1.5, base64
  if (!encrypted) throw new api.ApiError(2, "This password is too long");
  return { pwd: encrypted, rsa_encrypt: "1" };
}

function showAuth(which) {
  $("#main").hidden = true;
  $("#auth").hidden = false;
  $("#login-form").hidden = which !== "login";
  $("#signup-form").hidden = which !== "signup";
  $("#tab-login").classList.toggle("active", which === "login");
  $("#tab-signup").classList.toggle("active", which === "signup");
  document.title = which === "login" ? "Log in · imboy chat" : "Sign up · imboy chat";
  const first = $(which === "login" ? "#login-form input" : "#signup-form input");
  if (first) first.focus();
}

function authError(err) {
  $("#auth-error").textContent = err ? err.message || String(err) : "";
}

async function submitting(form, fn) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  authError(null);
  try {
    await fn(new FormData(form));
  } catch (err) {
    authError(err instanceof TypeError ? new Error("Cannot reach the server") : err);
  } finally {
    button.disabled = false;
  }
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  submitting(ev.target, async (data) => {
    const account = String(data.get("account")).trim();
    if (!account || !data.get("pwd")) throw new Error("Enter your account and password");
    const pwd = await encryptPassword(String(data.get("pwd")));
    start(await api.post("/passport/login", { account, ...pwd }, { auth: false }));
  });
});

$("#signup-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  submitting(ev.target, async (data) => {
    const account = String(data.get("account")).trim();
    const code = String(data.get("code")).trim();
    if (!account || !code || !data.get("pwd")) throw new Error("Fill in the email, the code and a password");
    const pwd = await encryptPassword(String(data.get("pwd")));
    start(await api.post("/passport/signup", { type: "email", account, code, ...pwd }, { auth: false }));
    toast("Welcome to imboy!");
  });
});

$("#send-code").addEventListener("click", async (ev) => {
  const button = ev.currentTarget;
  const account = $("#signup-form input[name=account]").value.trim();
  authError(null);
  if (!account) return authError(new Error("Enter your email first"));
  button.disabled = true;
  try {
    await api.post("/passport/getcode", { type: "email", account }, { auth: false });
    toast("Code sent: check your mail");
    let left = 60;
    const tick = setInterval(() => {
      left -= 1;
      button.textContent = left > 0 ? `Resend (${left})` : "Send code";
      if (left <= 0) {
        clearInterval(tick);
        button.disabled = false;
      }
    }, 1000);
    button.textContent = `Resend (${left})`;
  } catch (err) {
    button.disabled = false;
    authError(err instanceof TypeError ? new Error("Cannot reach the server") : err);
  }
});

// ---- the logged-in app ----------------------------------------------------

function start(login) {
  const previous = session.load();
  session.save({ ...login, state: previous && previous.uid === login.uid ? previous.state : "online" });
  boot();
  location.hash = "#/chats";
  route(); // also when the hash was #/chats already
}

function boot() {
  const s = session.load();
  if (!s) return false;
  state.me = s;
  state.myState = s.state === "hide" ? "hide" : "online";
  state.store = new Store(s.uid);
  state.friends = new Map();
  state.groups = new Map();
  state.formerGroups = new Map();
  state.requests = [];
  state.tab = state.tab || "chats";
  $("#auth").hidden = true;
  $("#main").hidden = false;
  $("#login-form").reset();
  $("#signup-form").reset();
  authError(null);
  renderMe();
  const socket = new ChatSocket((opts) => api.freshToken(opts));
  state.socket = socket;
  socket.addEventListener("state", (ev) => {
    state.conn = ev.detail;
    renderConnection();
    if (ev.detail.state === "offline" || ev.detail.state === "kicked") {
      // Disconnected, we hear no presence events: say so rather than show stale dots.
      for (const friend of state.friends.values()) friend.status = "unknown";
      emit("friends");
    }
  });
  socket.addEventListener("frame", (ev) => onFrame(ev.detail));
  socket.addEventListener("open", () => {
    flushOutbox();
    loadAll(); // presence and requests may have changed while away
  });
  loadAll();
  socket.start();
  return true;
}

function end(message) {
  if (state.socket) state.socket.stop(true);
  state.socket = null;
  state.me = null;
  state.store = null;
  session.clear();
  closeConversation();
  renderConnection();
  if (message) toast(message, "error");
  location.hash = "#/login";
  route();
}

api.onAuthLost((msg) => {
  if (state.me) end(msg || "Please log in again");
});
document.addEventListener("imboy:logout", () => end(null));
setAcceptHandler(async (uid) => {
  try {
    await api.post("/friend/confirm", { uid });
    await loadFriends();
    await loadRequests();
    toast("Friend request accepted");
  } catch (err) {
    if (!(err instanceof api.ApiError && err.code === 706)) toast(err.message, "error");
  }
});
onUnknown((uid, gid) => lookup(uid, gid));

// ---- connection state -----------------------------------------------------

let countdown = null;

function renderConnection() {
  const { state: s, retryAt } = state.conn;
  const dot = $("#conn-dot");
  dot.className = "conn-dot " + s;
  dot.dataset.connections = String(state.socket ? state.socket.opens : 0);
  const label = { online: "Connected", connecting: "Connecting…", offline: "Offline", kicked: "Disconnected" }[s] || "";
  dot.title = label;
  dot.setAttribute("aria-label", label);
  const banner = $("#conn-banner");
  const text = $("#conn-text");
  const retry = $("#conn-retry");
  clearInterval(countdown);
  banner.hidden = !state.me || s === "online" || s === "stopped";
  banner.dataset.state = s;
  if (s === "connecting") {
    text.textContent = "Connecting…";
    retry.hidden = true;
  } else if (s === "offline") {
    const show = () => {
      const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      text.textContent = `Offline: messages you write are kept and sent when the connection is back. Retrying in ${secs} s.`;
    };
    show();
    countdown = setInterval(show, 1000);
    retry.hidden = false;
    retry.textContent = "Retry now";
  } else if (s === "kicked") {
    text.textContent = "You opened imboy in another browser window or tab, so this one was disconnected.";
    retry.hidden = false;
    retry.textContent = "Use here";
  }
}

// On a wide screen a tab only switches the list: the open pane stays.
$("#tabs").addEventListener("click", (ev) => {
  const link = ev.target.closest("a[data-tab]");
  if (!link || TABS.includes(state.route.name) || matchMedia("(max-width: 720px)").matches) return;
  ev.preventDefault();
  state.tab = link.dataset.tab;
  renderList();
});

$("#conn-retry").addEventListener("click", () => state.socket && state.socket.retryNow());

// ---- system events --------------------------------------------------------

on("s2c", (f) => {
  const p = f.payload || {};
  const type = String(p.msg_type ?? f.code ?? "");
  const who = p.user ? p.user.nickname || p.user.account : "Someone";
  if (type === "1019") {
    const friend = state.friends.get(f.from);
    if (friend) {
      friend.status = p.content === "online" ? "online" : "offline";
      emit("friends");
    }
  } else if (type === "786") {
    // The server closes this connection with 4786 right after.
  } else if (type === "apply_friend") {
    loadRequests();
    toast(`${who} sent you a friend request`);
  } else if (type === "apply_friend_confirm") {
    loadFriends().then(loadRequests);
    toast(`You and ${who} are now friends`);
  } else if (type === "friend_delete") {
    loadFriends().then(() => {
      const former = person(f.from);
      toast(`${former ? former.remark || former.nickname || former.account : "Someone"} is no longer your friend`);
    });
  } else if (type.startsWith("group_")) {
    loadGroups();
    if (type === "group_dissolve") toast("A group was dissolved");
    // The members pane of that group is open: show who is in it now.
    if (state.route.name === "group" && state.route.arg === p.content) panes.renderGroup($("#view"), p.content);
  }
});

let listFrame = 0;
function refreshList() {
  if (!state.me || listFrame) return;
  listFrame = requestAnimationFrame(() => {
    listFrame = 0;
    if (state.me) renderList();
  });
}
for (const what of ["friends", "groups", "requests", "convs", "people"]) on(what, refreshList);
on("me", renderMe);
document.addEventListener("imboy:unread", () => state.me && renderBadges());

// Another tab logged out or in as someone else: follow it.
window.addEventListener("storage", (ev) => {
  if (ev.key !== "imboy.session") return;
  const s = session.load();
  if (!s && state.me) end(null);
  else if (s && (!state.me || s.uid !== state.me.uid)) location.reload();
});

window.addEventListener("hashchange", route);
boot();
route();
