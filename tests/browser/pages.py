"""The web client as a person uses it: one `ChatPage` per browser context.

Every step goes through what is on the screen (forms, buttons, lists), and
every check waits for what a person would see, with a time-out.
"""
from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

WAIT_MS = 10_000


class ChatPage:
    def __init__(self, context: Any, base_url: str) -> None:
        self.context = context
        self.base = base_url
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    # -- navigation -------------------------------------------------------
    def open(self, hash_: str = "") -> "ChatPage":
        self.page.goto(f"{self.base}/chat{hash_}", wait_until="domcontentloaded")
        return self

    def reopen(self) -> "ChatPage":
        """A new page in the same context (same localStorage), like reopening the tab."""
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return self.open()

    def go(self, hash_: str) -> None:
        self.page.evaluate("h => { location.hash = h }", hash_)

    def tab(self, name: str) -> None:
        self.page.click(f"#tabs a[data-tab={name}]")

    # -- account ----------------------------------------------------------
    def login(self, account: str, password: str) -> None:
        self.open("#/login")
        self.page.fill("#login-form input[name=account]", account)
        self.page.fill("#login-form input[name=pwd]", password)
        self.page.click("#login-form button[type=submit]")
        self.wait_logged_in()

    def wait_logged_in(self) -> None:
        expect(self.page.locator("#main")).to_be_visible(timeout=WAIT_MS)
        self.wait_connected()

    def wait_connected(self, timeout: int = WAIT_MS) -> None:
        expect(self.page.locator("#conn-dot")).to_have_class(re.compile(r"\bonline\b"), timeout=timeout)
        expect(self.page.locator("#conn-banner")).to_be_hidden(timeout=timeout)

    def session(self) -> dict[str, Any]:
        return self.page.evaluate("JSON.parse(localStorage.getItem('imboy.session'))")

    # -- conversations ----------------------------------------------------
    def open_chat_with(self, friend_hashid: str) -> None:
        self.tab("friends")
        self.page.click(f"#list a.item[data-id='{friend_hashid}']")
        expect(self.page.locator("#composer-input")).to_be_visible()

    def send(self, text: str) -> None:
        self.page.fill("#composer-input", text)
        self.page.press("#composer-input", "Enter")
        expect(self.message(text)).to_be_visible()

    def message(self, text: str):
        return self.page.locator("#messages li.msg", has=self.page.locator(".text", has_text=re.compile(
            "^" + re.escape(text) + "$")))

    def expect_message(self, text: str, status: str | None = None, timeout: int = WAIT_MS) -> None:
        msg = self.message(text)
        expect(msg).to_be_visible(timeout=timeout)
        if status is not None:
            expect(msg).to_have_attribute("data-status", status, timeout=timeout)

    def friend_item(self, hashid: str):
        return self.page.locator(f"#list a.item[data-id='{hashid}']")

    def check_no_errors(self) -> None:
        assert self.errors == [], f"JavaScript errors on the page: {self.errors}"

    # -- friends and groups -----------------------------------------------
    def accept_next_confirm(self) -> None:
        """Answer OK to the next confirm() the page shows, as a person clicking OK."""
        self.page.once("dialog", lambda dialog: dialog.accept())

    def remove_friend(self, hashid: str) -> None:
        """Friends tab → the friend's profile (the "i" link) → Remove friend → OK."""
        self.tab("friends")
        self.page.click(f"#list a.info-link[href='#/friend/{hashid}']")
        self.accept_next_confirm()
        self.page.get_by_role("button", name="Remove friend").click()
        expect(self.page).to_have_url(re.compile(r"#/friends$"))

    def group_item(self, gid: str):
        return self.page.locator(f"#list a.item[data-id='{gid}']")

    def chat_item(self, key: str):
        return self.page.locator(f"#list a.item[data-key='{key}']")

    def open_group_members(self, gid: str) -> None:
        """Groups tab → the group's chat → its title, which opens the members pane."""
        self.tab("groups")
        self.group_item(gid).click()
        expect(self.page.locator("#composer-input")).to_be_visible()
        self.page.click(".pane-head .head-text")
        expect(self.page.locator(".members li.person").first).to_be_visible()

    def member(self, hashid: str):
        return self.page.locator(f".members li.person[data-uid='{hashid}']")

    def leave_group(self, gid: str) -> None:
        """From the group's members pane: Leave group → OK."""
        self.open_group_members(gid)
        self.accept_next_confirm()
        self.page.get_by_role("button", name="Leave group").click()
        expect(self.page).to_have_url(re.compile(r"#/groups$"))
