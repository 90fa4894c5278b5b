"""Sign-up with an emailed code, login with the RSA transport, profile, logout, token refresh."""
from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from .pages import ChatPage

PASSWORD = "browser-pass-123"


def mailed_code(sink, email: str) -> str:
    assert sink.wait_for(lambda s: any(m["To"] == email for m in s.messages)), "no mail with the code"
    mail = [m for m in sink.messages if m["To"] == email][-1]
    return re.search(r"\b(\d{6})\b", mail.get_content()).group(1)


def test_sign_up_with_a_mailed_code_then_log_out_and_in(server, imboy, smtp_sink, chromium, new_context, shot):
    chat = ChatPage(new_context(), server.url).open()
    page = chat.page
    expect(page.locator("#login-form")).to_be_visible()
    shot(page, "login-form")

    page.click("#tab-signup")
    page.fill("#signup-form input[name=account]", "carol@example.com")
    page.click("#send-code")
    expect(page.locator("#send-code")).to_have_text(re.compile(r"Resend \(\d+\)"))
    page.fill("#signup-form input[name=code]", mailed_code(smtp_sink, "carol@example.com"))
    page.fill("#signup-form input[name=pwd]", PASSWORD)
    shot(page, "signup-filled")
    page.click("#signup-form button[type=submit]")
    chat.wait_logged_in()
    me = chat.session()
    assert me["token"] and me["refreshtoken"] and re.fullmatch(r"[0-9a-z]{6,}", me["uid"])
    expect(page.locator("#me-name")).to_have_text(me["nickname"] or me["account"])

    # Signature and presence state, set from the profile pane.
    page.click("#me-link")
    page.fill("#sign-input", "Testing the web client")
    page.click("#sign-form button[type=submit]")
    expect(page.locator("#me-sign")).to_have_text("Testing the web client")
    page.check("#presence-form input[value=hide]")
    expect(page.locator(".toast", has_text="You now appear offline")).to_be_visible()
    shot(page, "profile")
    uid = imboy.users.access_user(imboy_id(me["uid"]))
    assert uid["sign"] == "Testing the web client" and uid["state"] == "hide"

    page.click("#logout-button")
    expect(page.locator("#login-form")).to_be_visible()
    assert chat.session() is None

    # Log in again: the password goes RSA-encrypted (the server refuses plain text with rsa_encrypt=1).
    chat.login("carol@example.com", PASSWORD)
    expect(page.locator("#me-sign")).to_have_text("Testing the web client")
    shot(page, "logged-in-again")

    page.click("#me-link")
    page.click("#logout-button")
    page.fill("#login-form input[name=account]", "carol@example.com")
    page.fill("#login-form input[name=pwd]", "wrong password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#auth-error")).not_to_be_empty()
    shot(page, "wrong-password")
    chat.check_no_errors()


def imboy_id(hashid: str) -> int:
    from imboy import ids
    return ids.decode(hashid)


def test_an_expired_access_token_is_refreshed(make_app, make_server, users, chromium, new_context):
    """Code 705 on an API call and an expired token at (re)connect: both refresh, nobody is logged out."""
    server = make_server(make_app(ACCESS_TOKEN_TTL=1.0, DEFAULT_AVATAR=""))
    imboy = server.imboy
    from ..helpers import make_user
    user = make_user(imboy, "dave@example.com", password=PASSWORD)
    chat = ChatPage(new_context(), server.url)
    chat.login(user.email, PASSWORD)
    first = chat.session()["token"]
    time.sleep(1.1)  # the access token expires (its lifetime is 1 s here)
    chat.page.click("#me-link")
    chat.page.fill("#sign-input", "after refresh")
    chat.page.click("#sign-form button[type=submit]")
    expect(chat.page.locator("#me-sign")).to_have_text("after refresh")
    assert chat.session()["token"] != first
    assert imboy.users.access_user(user.id)["sign"] == "after refresh"
    # A page opened later with the stale token connects after refreshing it.
    time.sleep(1.1)
    chat.reopen()
    chat.wait_connected()
    expect(chat.page.locator("#login-form")).to_be_hidden()

    # A session the server no longer accepts (706, even for the refresh token) goes to the login form.
    chat.page.evaluate("""() => {
        const s = JSON.parse(localStorage.getItem('imboy.session'));
        s.token = s.refreshtoken = 'not-a-token';
        localStorage.setItem('imboy.session', JSON.stringify(s));
    }""")
    chat.page.close()
    chat.reopen()
    expect(chat.page.locator("#login-form")).to_be_visible()
    assert chat.session() is None
    chat.check_no_errors()
