"""The baseline: the thinnest gevent-websocket relay, no auth, no storage.

It stands in for the limit of this stack (gevent + gevent-websocket as they
come), so every imboy figure is reported beside the same figure for this
relay, measured in the same run with the same load generator.

    python bench/baseline_server.py --port 9900

A client connects to `/ws?name=X` (optionally `&group=G`).  Text frames:

- `ping` is answered with `pong2` (the imboy heartbeat);
- `{"to": "Y", "id": ..., ...}` is forwarded as it is to connection Y, and a
  small `{"type": "ack", "id": ...}` goes back to the sender (the counterpart
  of imboy's server ack);
- `{"to": "#G", ...}` is forwarded to every other member of group G;
- `{"to": "-", ...}` is read and dropped (the counterpart of a client ack,
  which imboy consumes without forwarding).
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

import gevent  # noqa: E402
import ujson  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.exceptions import WebSocketError  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

# name -> (websocket, write lock); group -> names
conns: dict[str, tuple[Any, Semaphore]] = {}
groups: dict[str, set[str]] = {}


def _send(name: str, text: str) -> None:
    entry = conns.get(name)
    if entry is None:
        return
    ws, lock = entry
    try:
        with lock:  # gevent-websocket's send is not safe for two writers
            ws.send(text)
    except (WebSocketError, OSError):
        pass


def app(environ: dict, start_response: Any) -> list[bytes]:
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    name = (query.get("name") or [""])[0]
    group = (query.get("group") or [""])[0]
    conns[name] = (ws, Semaphore())
    if group:
        groups.setdefault(group, set()).add(name)
    try:
        while True:
            try:
                text = ws.receive()
            except (WebSocketError, OSError):
                break
            if text is None:
                break
            if text == "ping":
                _send(name, "pong2")
                continue
            try:
                frame = ujson.loads(text)
                to = frame["to"]
            except (ValueError, KeyError, TypeError):
                continue
            if to == "-":
                continue
            if "id" in frame:
                _send(name, '{"type":"ack","id":%s}' % ujson.dumps(frame["id"]))
            if to.startswith("#"):
                for member in list(groups.get(to[1:], ())):
                    if member != name:
                        _send(member, text)
            else:
                _send(to, text)
    finally:
        if conns.get(name, (None,))[0] is ws:
            del conns[name]
        if group:
            groups.get(group, set()).discard(name)
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9900)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler, log=None,
                        backlog=4096)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
