// Small DOM helpers: element building (text always goes through
// textContent, never innerHTML, so nothing a user typed becomes markup),
// toasts, avatars and time formatting.

export const $ = (sel, root = document) => root.querySelector(sel);

// h("li#some-id.msg.mine", {dataset: {id}}, child, "text", ...)
export function h(tag, props = {}, ...children) {
  const [head, ...classes] = tag.split(".");
  const [name, id] = head.split("#");
  const el = document.createElement(name || "div");
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className += (el.className ? " " : "") + v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function toast(text, kind = "info") {
  const box = $("#toasts");
  const el = h("div.toast", { class: kind, role: "status" }, text);
  box.append(el);
  while (box.children.length > 2) box.firstElementChild.remove(); // the newest two say enough
  setTimeout(() => el.classList.add("leaving"), 3500);
  setTimeout(() => el.remove(), 4000);
}

const PALETTE = ["#e57373", "#f06292", "#ba68c8", "#7986cb", "#4fc3f7", "#4db6ac", "#81c784", "#ffb74d", "#a1887f"];

// Initials on a coloured disc; the avatar picture covers them once it loads
// (a picture that fails to load leaves the initials).
export function avatar(user, extraClass = "") {
  const name = (user && (user.remark || user.nickname || user.groupname || user.account)) || "?";
  const id = (user && user.id) || name;
  let hash = 0;
  for (const ch of id) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const el = h("span.avatar", { class: extraClass, "aria-hidden": "true" });
  el.style.background = PALETTE[hash % PALETTE.length];
  el.textContent = [...name.trim()][0]?.toUpperCase() || "?";
  const url = user && user.avatar;
  if (url && /^https?:\/\//.test(url)) {
    const img = new Image();
    img.alt = "";
    img.onload = () => el.replaceChildren(img);
    img.src = url;
  }
  return el;
}

export function displayName(user) {
  if (!user) return "";
  return user.remark || user.nickname || user.account || user.email || user.id || "";
}

export function formatTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (d.toDateString() === now.toDateString()) return hm;
  return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hm;
}

// A message id: 20 characters, time first so ids sort roughly by age, then
// 60 random bits (ids must be unique across all users of the server).
export function newId() {
  const alphabet = "0123456789abcdefghijklmnopqrstuv";
  const rand = crypto.getRandomValues(new Uint8Array(12));
  let id = Date.now().toString(32).padStart(9, "0").slice(-9);
  for (let i = 0; id.length < 20; i++) id += alphabet[rand[i] & 31];
  return id;
}
