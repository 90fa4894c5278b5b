"""The page's connection: heartbeats keep it open; after a server restart it
reconnects and nothing is lost.

For the restart, the server runs as a subprocess (`python wsgi.py`, configured by IMBOY_*
variables) on the test's SQLite file, so it can be killed with SIGKILL and
started again on the same port; the users are created in that file first.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ..helpers import PASSWORD, ServerProcess
from .pages import ChatPage



def _process(settings: dict, log_path: Path) -> ServerProcess:
    """`python wsgi.py` on the test's database, killed and restarted at will."""
    return ServerProcess({
        "IMBOY_DATABASE_URL": settings["DATABASE_URL"],
        "IMBOY_SECRET_KEY": settings["SECRET_KEY"],
        "IMBOY_RSA_PRIVATE_KEY": settings["RSA_PRIVATE_KEY"],
        "IMBOY_INSTANCE_PATH": settings["INSTANCE_PATH"],
        "IMBOY_ACK_RETRY_SCHEDULE": "0.4,0.6,0.8,1.0",
        "IMBOY_DEFAULT_AVATAR": "none",  # not a URL: the page draws initials, fetches nothing
        "IMBOY_LOG_LEVEL": "INFO",
    }, str(log_path))


@pytest.fixture
def server_process(settings, tmp_path):
    server = _process(settings, tmp_path / "server.log")
    yield server
    server.kill()


def test_the_pages_reconnect_after_a_server_restart_and_nothing_is_lost(
        imboy, users, server_process, chromium, new_context, shot):
    alice, bob = users(1, nickname="Alice")[0], users(1, nickname="Bob")[0]
    imboy.friends.do_make_friends(alice.id, bob.id)
    server_process.start()
    pa, pb = ChatPage(new_context(), server_process.url), ChatPage(new_context(), server_process.url)
    pa.login(alice.email, PASSWORD)
    pb.login(bob.email, PASSWORD)
    pa.open_chat_with(bob.hashid)
    pb.open_chat_with(alice.hashid)
    pa.send("Before the restart")
    pa.expect_message("Before the restart", "delivered")
    pb.expect_message("Before the restart")

    server_process.kill()
    for chat in (pa, pb):
        expect(chat.page.locator("#conn-banner")).to_be_visible()
        expect(chat.page.locator("#conn-dot")).not_to_have_class("conn-dot online")
    pa.send("Written while the server was down")
    pb.send("Me too")
    pa.expect_message("Written while the server was down", "sending")
    pb.expect_message("Me too", "sending")
    shot(pa.page, "alice-offline")

    server_process.start()
    for chat in (pa, pb):
        chat.wait_connected(timeout=30_000)
    pa.expect_message("Written while the server was down", "delivered")
    pb.expect_message("Me too", "delivered")
    pb.expect_message("Written while the server was down")
    pa.expect_message("Me too")
    pa.send("After the restart")
    pb.expect_message("After the restart")
    shot(pa.page, "alice-reconnected")
    shot(pb.page, "bob-reconnected")

    # Everything is still there, once, after reopening the pages.
    for chat, peer in ((pa, bob), (pb, alice)):
        chat.page.close()
        chat.reopen()
        chat.wait_connected()
        chat.open_chat_with(peer.hashid)
        for text in ("Before the restart", "Written while the server was down", "Me too", "After the restart"):
            expect(chat.message(text)).to_have_count(1)
        expect(chat.page.locator("#messages li.msg")).to_have_count(4)
    shot(pb.page, "bob-history-after-reopen")
    pa.check_no_errors()
    pb.check_no_errors()


def test_heartbeats_keep_an_idle_page_connected(make_app, make_server, users, chromium, new_context):
    """The server closes connections silent for WS_IDLE_TIMEOUT; the page's `ping`s prevent it."""
    server = make_server(make_app(WS_IDLE_TIMEOUT=1.0, DEFAULT_AVATAR=""))
    from ..helpers import make_user
    user = make_user(server.imboy, "erin@example.com")
    chat = ChatPage(new_context(), server.url)
    chat.login(user.email, PASSWORD)
    dot = chat.page.locator("#conn-dot")
    expect(dot).to_have_attribute("data-connections", "1")
    time.sleep(3.0)  # three idle time-outs: without heartbeats the server would have closed it
    expect(dot).to_have_attribute("data-connections", "1")
    chat.wait_connected()
    chat.check_no_errors()
