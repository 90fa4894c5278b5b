"""Two and three people chatting through the web client, each in their own browser context."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from ..helpers import PASSWORD
from .pages import ChatPage


def person(users, name: str):
    return users(1, nickname=name)[0]


def logged_in(new_context, server, user, phone: bool = False) -> ChatPage:
    chat = ChatPage(new_context(phone=phone), server.url)
    chat.login(user.email, PASSWORD)
    return chat


def test_request_accept_chat_both_ways_marks_and_presence(server, users, chromium, new_context, shot):
    alice, bob = person(users, "Alice"), person(users, "Bob")
    pa, pb = logged_in(new_context, server, alice), logged_in(new_context, server, bob)

    # Alice finds Bob by email and asks.
    pa.page.click("#find-link")
    pa.page.fill("#find-keyword", bob.email)
    pa.page.press("#find-keyword", "Enter")
    result = pa.page.locator(f"#find-results li.person[data-uid='{bob.hashid}']")
    expect(result).to_contain_text("Bob")
    pa.page.fill("#find-msg", "Hi Bob, it's Alice")
    result.get_by_role("button", name="Add friend").click()
    expect(result.locator(".done")).to_have_text("Request sent")
    shot(pa.page, "alice-request-sent")

    # Bob sees it arrive live, and accepts.
    expect(pb.page.locator("#request-count")).to_have_text("1")
    pb.tab("requests")
    request = pb.page.locator(f"#list li.request[data-uid='{alice.hashid}']")
    expect(request).to_contain_text("Hi Bob, it's Alice")
    shot(pb.page, "bob-sees-request")
    request.get_by_role("button", name="Accept").click()
    expect(pb.page.locator("#request-count")).to_be_hidden()

    # Both now list each other, online.
    pa.tab("friends")
    expect(pa.friend_item(bob.hashid)).to_have_attribute("data-status", "online")
    pb.tab("friends")
    expect(pb.friend_item(alice.hashid)).to_have_attribute("data-status", "online")

    # Alice writes; Bob's client stores it and acks: ✓ then ✓✓.
    pa.open_chat_with(bob.hashid)
    pa.send("Hello Bob")
    pa.expect_message("Hello Bob", "delivered")
    expect(pa.message("Hello Bob").locator(".mark")).to_have_text("✓✓")
    pb.tab("chats")
    item = pb.page.locator(f"#list a.item[data-key='c:{alice.hashid}']")
    expect(item.locator(".unread")).to_have_text("1")
    expect(item).to_contain_text("Hello Bob")
    shot(pb.page, "bob-unread")
    item.click()
    pb.expect_message("Hello Bob")
    pb.send("Hi Alice! Nice to meet you.")
    pb.expect_message("Hi Alice! Nice to meet you.", "delivered")
    pa.expect_message("Hi Alice! Nice to meet you.")
    expect(pa.page.locator("#conv-status")).to_have_text("online")
    shot(pa.page, "alice-chat")
    shot(pb.page, "bob-chat")

    # Bob closes his page: Alice sees him go offline.
    pb.page.close()
    expect(pa.page.locator("#conv-status")).to_have_text("offline")
    pa.tab("friends")
    expect(pa.friend_item(bob.hashid)).to_have_attribute("data-status", "offline")
    shot(pa.page, "alice-sees-bob-offline")
    pa.check_no_errors()
    pb.check_no_errors()


def test_a_message_sent_while_the_peer_is_away_appears_when_they_open_the_page(
        server, imboy, users, chromium, new_context, shot):
    alice, bob = person(users, "Alice"), person(users, "Bob")
    imboy.friends.do_make_friends(alice.id, bob.id)
    pa = logged_in(new_context, server, alice)
    pa.open_chat_with(bob.hashid)
    expect(pa.page.locator("#conv-status")).to_have_text("offline")
    pa.send("Are you there?")
    pa.send("Call me when you see this")
    # Stored by the server, but nobody's client has it yet: one mark.
    pa.expect_message("Are you there?", "sent")
    expect(pa.message("Are you there?").locator(".mark")).to_have_text("✓")

    # Bob opens the chat on his phone later.
    pb = logged_in(new_context, server, bob, phone=True)
    item = pb.page.locator(f"#list a.item[data-key='c:{alice.hashid}']")
    expect(item.locator(".unread")).to_have_text("2")
    shot(pb.page, "phone-chat-list")
    item.click()
    expect(pb.page.locator("#list")).to_be_hidden()  # the conversation covers the list on a phone
    pb.expect_message("Are you there?")
    pb.expect_message("Call me when you see this")
    shot(pb.page, "phone-conversation")
    pa.expect_message("Are you there?", "delivered")
    pa.expect_message("Call me when you see this", "delivered")
    expect(pa.page.locator("#conv-status")).to_have_text("online")
    shot(pa.page, "alice-delivered")

    # Reopened, Bob's page shows the same history from this browser's storage, once each.
    pb.page.close()
    pb.reopen()
    pb.wait_connected()
    pb.page.locator(f"#list a.item[data-key='c:{alice.hashid}']").click()
    expect(pb.message("Are you there?")).to_have_count(1)
    pb.page.click(".pane-head .back")
    expect(pb.page.locator("#list")).to_be_visible()
    pa.check_no_errors()
    pb.check_no_errors()


def test_revoke_shows_a_placeholder_on_both_sides(server, imboy, users, chromium, new_context, shot):
    alice, bob = person(users, "Alice"), person(users, "Bob")
    imboy.friends.do_make_friends(alice.id, bob.id)
    pa, pb = logged_in(new_context, server, alice), logged_in(new_context, server, bob)
    pa.open_chat_with(bob.hashid)
    pb.open_chat_with(alice.hashid)
    pa.send("Meet at 5")
    pa.send("Oops, wrong chat")
    pa.expect_message("Oops, wrong chat", "delivered")
    pb.expect_message("Oops, wrong chat")

    wrong = pa.message("Oops, wrong chat")
    wrong.hover()
    wrong.get_by_role("button", name="Revoke").click()
    expect(pa.page.locator("#messages .revoked")).to_have_text("You revoked a message")
    expect(pb.page.locator("#messages .revoked")).to_have_text("Alice revoked a message")
    expect(pb.message("Oops, wrong chat")).to_have_count(0)
    pb.expect_message("Meet at 5")
    shot(pa.page, "alice-revoked")
    shot(pb.page, "bob-sees-placeholder")

    # Revoked before Bob's page ever got it: he sees only the placeholder.
    pb.page.close()
    pa.send("A secret")
    pa.expect_message("A secret", "sent")
    pa.message("A secret").hover()
    pa.message("A secret").get_by_role("button", name="Revoke").click()
    expect(pa.page.locator("#messages .revoked")).to_have_count(2)
    pb.reopen()
    pb.wait_connected()
    pb.page.locator(f"#list a.item[data-key='c:{alice.hashid}']").click()
    expect(pb.page.locator("#messages .revoked")).to_have_count(2)
    expect(pb.page.locator("#messages")).not_to_contain_text("A secret")
    shot(pb.page, "bob-placeholder-after-reopen")
    pa.check_no_errors()
    pb.check_no_errors()


def test_group_create_and_chat_with_three_people(server, imboy, users, chromium, new_context, shot):
    alice, bob, carol = person(users, "Alice"), person(users, "Bob"), person(users, "Carol")
    imboy.friends.do_make_friends(alice.id, bob.id)
    imboy.friends.do_make_friends(alice.id, carol.id)
    pa, pb, pc = (logged_in(new_context, server, u) for u in (alice, bob, carol))

    pa.tab("groups")
    pa.page.click("#new-group-link")
    pa.page.fill("#group-name", "Weekend trip")
    pa.page.check(f"#group-form input[value='{bob.hashid}']")
    pa.page.check(f"#group-form input[value='{carol.hashid}']")
    shot(pa.page, "new-group")
    pa.page.click("#group-form button[type=submit]")
    expect(pa.page.locator("#conv-title")).to_have_text("Weekend trip")
    gid = re.search(r"#/g/(\w+)", pa.page.url).group(1)
    pa.send("Who is coming on Saturday?")
    pa.expect_message("Who is coming on Saturday?", "sent")

    for chat in (pb, pc):
        item = chat.page.locator(f"#list a.item[data-key='g:{gid}']")
        expect(item).to_contain_text("Weekend trip")
        item.click()
        chat.expect_message("Who is coming on Saturday?")
        expect(chat.message("Who is coming on Saturday?").locator(".sender")).to_have_text("Alice")

    pb.send("Me!")
    pc.send("Me too")
    for chat, texts in ((pa, ("Me!", "Me too")), (pb, ("Me too",)), (pc, ("Me!",))):
        for text in texts:
            chat.expect_message(text)
    expect(pc.message("Me!").locator(".sender")).to_have_text("Bob")
    shot(pa.page, "alice-group")
    shot(pb.page, "bob-group")
    shot(pc.page, "carol-group")
    pa.page.click(".pane-head .head-text")
    expect(pa.page.locator(".members li.person")).to_have_count(3)
    shot(pa.page, "group-members")
    for chat in (pa, pb, pc):
        chat.check_no_errors()


def test_a_second_window_of_the_same_account_takes_over(server, users, chromium, new_context, shot):
    alice = person(users, "Alice")
    first = logged_in(new_context, server, alice)
    second = logged_in(new_context, server, alice)
    banner = first.page.locator("#conn-banner")
    expect(banner).to_have_attribute("data-state", "kicked")
    expect(banner).to_contain_text("another browser window")
    shot(first.page, "first-window-kicked")
    first.page.get_by_role("button", name="Use here").click()
    first.wait_connected()
    expect(second.page.locator("#conn-banner")).to_have_attribute("data-state", "kicked")
    first.check_no_errors()
    second.check_no_errors()
