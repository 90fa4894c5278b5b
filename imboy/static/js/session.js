// The logged-in session (tokens and profile) kept in localStorage, so a
// reload or a new tab of the same browser stays logged in.

const KEY = "imboy.session";

export function load() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || "null");
    return s && s.token && s.uid ? s : null;
  } catch {
    return null;
  }
}

export function save(s) {
  localStorage.setItem(KEY, JSON.stringify(s));
}

export function update(patch) {
  const s = load();
  if (s) save(Object.assign(s, patch));
  return s;
}

export function clear() {
  localStorage.removeItem(KEY);
}

// Milliseconds since the epoch at which a token expires (PROTOCOL section 2
// puts `exp` in milliseconds), or 0 when it cannot be read.
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    return Number(claims.exp) || 0;
  } catch {
    return 0;
  }
}
