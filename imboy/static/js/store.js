// Message history kept in this browser, per user: the server keeps messages
// only until they are acknowledged and has no history endpoint, so what a
// user has seen lives here.  Conversation keys are `c:<user hashid>` for
// one-to-one chats and `g:<group hashid>` for groups.  The outbox holds the
// frames sent but not yet acknowledged by the server; they are sent again
// (same id, which the server deduplicates) after every reconnect.

const MAX_PER_CONVERSATION = 2000;

export class Store {
  constructor(uid) {
    this.ns = `imboy.u.${uid}.`;
    this.convs = this.read("convs", {});
    this.outbox = this.read("outbox", {});
    this.cache = new Map(); // key -> {list, byId}
  }

  read(name, fallback) {
    try {
      const v = JSON.parse(localStorage.getItem(this.ns + name) || "null");
      return v === null ? fallback : v;
    } catch {
      return fallback;
    }
  }

  write(name, value) {
    const text = JSON.stringify(value);
    for (let tries = 0; tries < 5; tries++) {
      try {
        localStorage.setItem(this.ns + name, text);
        return;
      } catch {
        if (!this.trimLargest()) break; // quota: drop old history and retry
      }
    }
    console.warn("imboy: local history is full, not saved:", name);
  }

  trimLargest() {
    let largest = null;
    for (const key of Object.keys(this.convs)) {
      const n = this.conversation(key).list.length;
      if (n > 20 && (!largest || n > largest.n)) largest = { key, n };
    }
    if (!largest) return false;
    const c = this.conversation(largest.key);
    c.list.splice(0, Math.floor(c.list.length / 2));
    c.byId = new Map(c.list.map((m) => [m.id, m]));
    localStorage.setItem(this.ns + "m." + largest.key, JSON.stringify(c.list));
    return true;
  }

  conversation(key) {
    let c = this.cache.get(key);
    if (!c) {
      const list = this.read("m." + key, []);
      c = { list, byId: new Map(list.map((m) => [m.id, m])) };
      this.cache.set(key, c);
    }
    return c;
  }

  messages(key) {
    return this.conversation(key).list;
  }

  find(key, id) {
    return this.conversation(key).byId.get(id) || null;
  }

  // Append a message; false (and nothing stored) when its id is known.
  add(key, msg) {
    const c = this.conversation(key);
    if (c.byId.has(msg.id)) return false;
    c.list.push(msg);
    c.byId.set(msg.id, msg);
    if (c.list.length > MAX_PER_CONVERSATION) {
      for (const old of c.list.splice(0, c.list.length - MAX_PER_CONVERSATION)) c.byId.delete(old.id);
    }
    this.write("m." + key, c.list);
    return true;
  }

  update(key, id, patch) {
    const msg = this.find(key, id);
    if (!msg) return null;
    Object.assign(msg, patch);
    this.write("m." + key, this.conversation(key).list);
    return msg;
  }

  conv(key) {
    return this.convs[key] || null;
  }

  touch(key, patch) {
    this.convs[key] = Object.assign(this.convs[key] || { key, unread: 0, ts: 0 }, patch);
    this.write("convs", this.convs);
    return this.convs[key];
  }

  // Conversations, most recent first.
  recent() {
    return Object.values(this.convs).sort((a, b) => (b.ts || 0) - (a.ts || 0));
  }

  queue(id, frame, key) {
    this.outbox[id] = { frame, key: key || null, at: Date.now() };
    this.write("outbox", this.outbox);
  }

  unqueue(id) {
    const entry = this.outbox[id];
    if (entry) {
      delete this.outbox[id];
      this.write("outbox", this.outbox);
    }
    return entry || null;
  }

  queued() {
    return Object.entries(this.outbox)
      .sort((a, b) => a[1].at - b[1].at)
      .map(([id, entry]) => ({ id, ...entry }));
  }
}
