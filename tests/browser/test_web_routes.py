"""The web client's pages over plain HTTP: the page, the old page URLs, the assets."""
from __future__ import annotations

import pytest


def test_chat_page_is_served(client):
    for path in ("/chat", "/chat.html"):
        resp = client.get(path)
        assert resp.status_code == 200
        assert resp.content_type == "text/html; charset=utf-8"
        html = resp.get_data(as_text=True)
        assert 'id="login-form"' in html and "/static/js/app.js" in html
        assert "/static/vendor/jsencrypt.min.js" in html
        # The page paces its heartbeat by the server's idle time-out (30 s in the tests).
        assert '<meta name="imboy-ws-idle-timeout" content="30.0">' in html


@pytest.mark.parametrize("path, target", [
    ("/passport/login.html", "/chat#/login"),
    ("/friend/find.html", "/chat#/find"),
    ("/friend/information.html?id=kybqdp", "/chat#/friend/kybqdp"),
    ("/friend/information.html", "/chat#/friends"),
    ("/friend/information.html?id=%22%3E%3Cscript%3E", "/chat#/friends"),
])
def test_original_page_urls_redirect_to_their_view(client, path, target):
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"] == target


def test_assets_are_served_as_modules_and_the_licence_ships(client):
    for name in ("app.js", "api.js", "socket.js", "messaging.js", "store.js"):
        resp = client.get(f"/static/js/{name}")
        assert resp.status_code == 200, name
        # Browsers refuse ES modules served with a non-JavaScript type.
        assert resp.mimetype == "text/javascript", (name, resp.mimetype)
        resp.close()
    resp = client.get("/static/vendor/jsencrypt.LICENSE.txt")
    assert resp.status_code == 200 and b"MIT" in resp.data
    resp.close()
    resp = client.get("/static/chat.css")
    assert resp.status_code == 200 and resp.mimetype == "text/css"
    resp.close()
