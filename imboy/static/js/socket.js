// The WebSocket of PROTOCOL section 4 and its life: subprotocol `text`,
// token and device type in the query string (browsers cannot set headers),
// a `ping` text heartbeat every 50 s (the server closes connections idle
// for 60 s), and reconnection with exponential backoff after any drop,
// except after close code 4786 (this account opened another web session).

const HEARTBEAT_MS = heartbeatInterval();
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 15_000;

// 50 s against the default 60 s idle time-out; sooner when the server
// (through the page's meta tag) says it closes idle connections sooner.
function heartbeatInterval() {
  const meta = document.querySelector('meta[name="imboy-ws-idle-timeout"]');
  const idleMs = meta ? parseFloat(meta.content) * 1000 : NaN;
  if (!(idleMs > 0)) return 50_000;
  return idleMs > 20_000 ? Math.min(50_000, idleMs - 10_000) : idleMs / 2;
}

export class ChatSocket extends EventTarget {
  // `getToken({probe})` resolves to the access token to use, refreshing it
  // first if needed; `probe` is set after a handshake that failed.
  constructor(getToken) {
    super();
    this.getToken = getToken;
    this.ws = null;
    this.state = "stopped";
    this.attempts = 0;
    this.retryAt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
    this.failedOpen = false;
    this.opens = 0; // connections opened so far
    this.onWake = () => {
      if (this.state === "offline") this.retryNow();
    };
  }

  start() {
    if (this.state !== "stopped" && this.state !== "kicked") return;
    window.addEventListener("online", this.onWake);
    document.addEventListener("visibilitychange", this.onWake);
    this.attempts = 0;
    this.connect();
  }

  // Close for good; `logout` tells the server with the `logout` text frame.
  stop(logout = false) {
    this.setState("stopped");
    window.removeEventListener("online", this.onWake);
    document.removeEventListener("visibilitychange", this.onWake);
    clearTimeout(this.timer);
    const ws = this.detach();
    if (ws && ws.readyState === WebSocket.OPEN && logout) ws.send("logout");
    if (ws) ws.close(1000);
  }

  retryNow() {
    if (this.state === "offline" || this.state === "kicked") {
      clearTimeout(this.timer);
      this.connect();
    }
  }

  get open() {
    return this.state === "online" && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return true;
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...extra } }));
  }

  async connect() {
    clearTimeout(this.timer);
    this.setState("connecting");
    let token;
    try {
      token = await this.getToken({ probe: this.failedOpen });
    } catch (err) {
      if (this.state === "stopped") return; // the session ended (706)
      this.scheduleRetry();
      return;
    }
    if (this.state !== "connecting") return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/ws?authorization=${encodeURIComponent(token)}&cos=web`;
    let ws;
    try {
      ws = new WebSocket(url, ["text"]);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.opens += 1;
      this.failedOpen = false;
      this.attempts = 0;
      this.lastHeard = Date.now();
      this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
      this.setState("online");
      this.dispatchEvent(new Event("open"));
    };
    ws.onmessage = (ev) => {
      this.lastHeard = Date.now();
      if (ev.data === "pong2") return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.detach();
      if (this.state === "stopped") return;
      if (ev.code === 4786) {
        this.setState("kicked");
        return;
      }
      if (!opened) this.failedOpen = true;
      this.scheduleRetry();
    };
  }

  // Send the heartbeat; a connection that stayed silent for two beats is
  // dead even if the browser has not noticed yet: drop it and reconnect.
  beat() {
    if (!this.ws) return;
    if (Date.now() - this.lastHeard > 2 * HEARTBEAT_MS + 10_000) {
      const ws = this.detach();
      ws.close();
      this.scheduleRetry();
      return;
    }
    this.send("ping");
  }

  detach() {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (ws) {
      ws.onopen = ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = null;
    }
    return ws;
  }

  scheduleRetry() {
    const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.attempts);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempts += 1;
    this.retryAt = Date.now() + delay;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
    this.setState("offline", { retryAt: this.retryAt });
  }
}
