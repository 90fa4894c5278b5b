// The HTTP API of PROTOCOL section 3: the {code, msg, payload} envelope,
// form-encoded bodies like the apps send, and the token rules: code 705
// refreshes the access token once (GET /refreshtoken) and retries, code 706
// (or a refresh that fails) means the session is gone.

import * as session from "./session.js";

export class ApiError extends Error {
  constructor(code, msg) {
    super(msg || "Request failed");
    this.code = code;
  }
}

let authLost = () => {};
let refreshing = null;

// `fn(msg)` is called when the server no longer accepts this session.
export function onAuthLost(fn) {
  authLost = fn;
}

async function send(method, path, params, token) {
  let url = path;
  let body;
  const clean = {};
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) clean[k] = v;
  if (method === "GET") {
    const query = new URLSearchParams(clean).toString();
    if (query) url += "?" + query;
  } else {
    body = new URLSearchParams(clean);
  }
  const headers = token ? { authorization: token } : {};
  const res = await fetch(url, { method, headers, body, cache: "no-store" });
  try {
    return await res.json();
  } catch {
    throw new ApiError(1, `The server answered HTTP ${res.status}`);
  }
}

// A new access token from the refresh token; concurrent callers share one request.
export function refreshToken() {
  if (!refreshing) {
    refreshing = (async () => {
      const s = session.load();
      if (!s || !s.refreshtoken) throw new ApiError(706, "Please log in again");
      const res = await fetch("/refreshtoken", {
        headers: { "imboy-refreshtoken": s.refreshtoken },
        cache: "no-store",
      });
      let data;
      try {
        data = await res.json();
      } catch {
        throw new ApiError(1, `The server answered HTTP ${res.status}`);
      }
      if (data.code !== 0 || !data.payload || !data.payload.token) {
        // 705 here means the refresh token itself expired: log in again.
        throw new ApiError(706, data.msg || "Your session expired, please log in again");
      }
      session.update({ token: data.payload.token });
      return data.payload.token;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function lost(msg) {
  authLost(msg);
  return new ApiError(706, msg);
}

export async function call(method, path, params, { auth = true } = {}) {
  let s = session.load();
  if (auth && !s) throw lost("Please log in");
  let data = await send(method, path, params, auth ? s.token : null);
  if (auth && data.code === 705) {
    try {
      await refreshToken();
    } catch (err) {
      if (err instanceof ApiError && err.code === 706) throw lost(err.message);
      throw err;
    }
    s = session.load();
    data = await send(method, path, params, s.token);
  }
  if (auth && data.code === 706) throw lost(data.msg || "Please log in again");
  if (data.code !== 0) throw new ApiError(data.code, data.msg);
  return data.payload;
}

export const get = (path, params, opts) => call("GET", path, params, opts);
export const post = (path, params, opts) => call("POST", path, params, opts);

// Before opening a WebSocket: a browser cannot read the 705/706 envelope of a
// refused handshake, so refresh an access token that is about to expire, and
// after a failed handshake ask an authenticated endpoint what is wrong.
export async function freshToken({ probe = false } = {}) {
  const s = session.load();
  if (!s) throw lost("Please log in");
  if (session.tokenExpiry(s.token) - Date.now() < 60_000) {
    try {
      return await refreshToken();
    } catch (err) {
      if (err instanceof ApiError && err.code === 706) throw lost(err.message);
      throw err;
    }
  }
  if (probe) await get("/user/open_info", { id: s.uid }); // 705 refreshes, 706 logs out
  return session.load().token;
}
