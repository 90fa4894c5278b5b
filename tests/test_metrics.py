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
