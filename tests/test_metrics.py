"""/metrics: protected, Prometheus text, and the values move with traffic."""
from __future__ import annotations

import re

from .helpers import WsClient

TOKEN = {"authorization": "Bearer metrics-secret"}


def _value(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def _scrape(client) -> str:
    r = client.get("/metrics", headers=TOKEN)
    assert r.status_code == 200
    assert r.content_type.startswith("text/plain")
    return r.get_data(as_text=True)


def test_metrics_exist_only_with_a_token(make_app):
    assert make_app().test_client().get("/metrics").status_code == 404
    client = make_app(METRICS_TOKEN="metrics-secret").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert "imboy_pending_messages" in _scrape(client)


def test_values_move_when_traffic_happens(make_app, make_server, users):
    app = make_app(METRICS_TOKEN="metrics-secret")
    imboy = app.extensions["imboy"]
    server = make_server(app)
    client = app.test_client()
    before = _scrape(client)
    a, b = users(2)
    imboy.friends.do_make_friends(a.id, b.id)

    # A refusal over HTTP counts under its code.
    client.get("/user/open_info", query_string={"id": "kybqdp"})
    # A message to an offline user waits in the pending store.
    ca = WsClient(server.ws_url, a.token)
    ca.send_json({"id": "metric-1", "type": "C2C", "to": b.hashid, "payload": "hi"})
    ca.expect_type("C2C_SERVER_ACK")
    imboy.metrics._pending._cache = (0.0, {})  # the depth is cached for 10 s between scrapes
    after = _scrape(client)

    assert _value(after, "imboy_errors_total", 'channel="http",code="706"') == \
        _value(before, "imboy_errors_total", 'channel="http",code="706"') + 1
    assert _value(after, "imboy_pending_messages", 'kind="c2c"') == 1
    assert _value(after, "imboy_db_pool_wait_seconds_count") > _value(before, "imboy_db_pool_wait_seconds_count")
    assert _value(after, "imboy_db_pool_in_use") == 0
    ca.close()


def test_websocket_traffic_moves_the_websocket_metrics(make_app, make_server, users):
    app = make_app(METRICS_TOKEN="metrics-secret")
    imboy = app.extensions["imboy"]
    server = make_server(app)
    client = app.test_client()
    a, b = users(2)
    imboy.friends.do_make_friends(a.id, b.id)
    ca, cb = WsClient(server.ws_url, a.token), WsClient(server.ws_url, b.token, device="android")
    refused = None
    try:
        WsClient(server.ws_url, "not-a-token")
    except Exception as exc:  # the handshake is refused before any upgrade
        refused = exc
    assert refused is not None
    ca.send_json({"id": "wm-1", "type": "C2C", "to": b.hashid, "payload": "hi"})
    ca.expect_type("C2C_SERVER_ACK")
    cb.expect_type("C2C")
    assert cb.expect_type("C2C")["id"] == "wm-1"  # the first retry, 0.4 s later
    cb.send_json({"id": "wm-1", "type": "C2C_CLIENT_ACK"})
    cb.send_text("ping")  # frames of one connection are handled in order:
    assert cb.expect(lambda f: f == "pong2") == "pong2"  # the ack is done
    ca.send_json({"type": "nonsense"})
    ca.expect_type("error")
    text = _scrape(client)
    assert _value(text, "imboy_ws_connections", 'device="web"') == 1
    assert _value(text, "imboy_ws_connections", 'device="android"') == 1
    assert _value(text, "imboy_ws_handshakes_total", 'outcome="accepted"') == 2
    assert _value(text, "imboy_ws_handshakes_total", 'outcome="code_706"') == 1
    assert _value(text, "imboy_ws_frames_in_total", 'type="C2C"') == 1
    assert _value(text, "imboy_ws_frames_in_total", 'type="unknown"') == 1
    assert _value(text, "imboy_ws_frames_out_total", 'type="C2C"') == 1
    assert _value(text, "imboy_acks_total", 'kind="c2c_server"') == 1
    assert _value(text, "imboy_retries_total") >= 1
    assert _value(text, "imboy_delivery_latency_seconds_count", 'kind="c2c"') == 1
    assert _value(text, "imboy_errors_total", 'channel="ws",code="1"') == 1
    ca.close()
    cb.close()
