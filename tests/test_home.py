"""GET / and /help: an HTML page listing every route the application serves."""
from __future__ import annotations

import re

import pytest
from markupsafe import escape


@pytest.mark.parametrize("path", ["/", "/help"])
def test_help_lists_every_route(app, client, path):
    resp = client.get(path)
    assert resp.status_code == 200 and resp.content_type.startswith("text/html")
    html = resp.get_data(as_text=True)
    rows = dict(re.findall(r"<td><code>(.*?)</code></td>\s*<td[^>]*>(.*?)</td>", html))
    routes = {str(escape(rule.rule)) for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert routes and routes <= set(rows)
    assert "/ws" in rows
    for known in ("/friend/apply", "/group/dissolve", "/conversation/msgbox", "/auth/assets", "/passport/login"):
        assert known in rows
    assert rows["/friend/list"] == "yes" and rows["/group/member"] == "yes"
    assert rows["/init"] == "no" and rows["/auth/assets"] == "no"
    assert rows["/conversation/online"].startswith("no")
    assert "Send a friend request" in html and "POST" in html and "GET" in html


def test_unknown_paths_stay_plain_404(client):
    assert client.get("/no/such/page").status_code == 404
