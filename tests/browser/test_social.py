"""Ending a friendship and leaving a group through the web client, as seen from both sides."""
from __future__ import annotations

from playwright.sync_api import expect

from ..helpers import PASSWORD
from .pages import ChatPage


def person(users, name: str):
    return users(1, nickname=name)[0]


def logged_in(new_context, server, user) -> ChatPage:
    chat = ChatPage(new_context(), server.url)
    chat.login(user.email, PASSWORD)
    return chat


def test_removing_a_friend_takes_them_off_both_lists_and_stops_messages(
        server, imboy, users, chromium, new_context, shot):
    alice, bob, carol = person(users, "Alice"), person(users, "Bob"), person(users, "Carol")
    imboy.friends.do_make_friends(alice.id, bob.id)
    imboy.friends.do_make_friends(bob.id, carol.id)
    pa, pb = logged_in(new_context, server, alice), logged_in(new_context, server, bob)
    pa.open_chat_with(bob.hashid)
    pb.open_chat_with(alice.hashid)
    pa.send("See you tomorrow")
    pa.expect_message("See you tomorrow", "delivered")
    pb.expect_message("See you tomorrow")

    # Alice removes Bob from his profile, reached from her friend list.
    pa.remove_friend(bob.hashid)
    expect(pa.friend_item(bob.hashid)).to_have_count(0)
    shot(pa.page, "alice-friends-after-removing")

    # Bob's page hears friend_delete: Alice leaves his friend list while their chat stays open.
    expect(pb.friend_item(alice.hashid)).to_have_count(0)
    expect(pb.friend_item(carol.hashid)).to_be_visible()
    expect(pb.page.locator("#conv-title")).to_have_text("Alice")
    expect(pb.page.locator("#conv-status")).to_have_text("not your friend")
    pb.expect_message("See you tomorrow")  # the history stays in his browser

    # The server refuses C2C between non-friends; the page marks the message failed and says why.
    pb.page.fill("#composer-input", "Why did you remove me?")
    pb.page.press("#composer-input", "Enter")
    pb.expect_message("Why did you remove me?", "failed")
    error = pb.message("Why did you remove me?").locator(".msg-error")
    expect(error).to_contain_text("Not friends: the message was not sent")
    expect(pb.message("Why did you remove me?").locator(".mark")).to_have_text("!")
    shot(pb.page, "bob-message-refused")

    # Alice's recent chats still name Bob; writing to him fails the same way.
    pa.tab("chats")
    item = pa.chat_item(f"c:{bob.hashid}")
    expect(item).to_contain_text("Bob")
    item.click()
    expect(pa.page.locator("#conv-status")).to_have_text("not your friend")
    pa.page.fill("#composer-input", "Sorry, misclick")
    pa.page.press("#composer-input", "Enter")
    pa.expect_message("Sorry, misclick", "failed")
    expect(pa.message("Sorry, misclick").locator(".msg-error")).to_contain_text("Not friends")
    # Bob's refused message never reached her: the server stored nothing for it.
    expect(pa.message("Why did you remove me?")).to_have_count(0)
    # His profile no longer offers to remove him.
    pa.page.click(".pane-head .head-text")
    expect(pa.page.locator(".profile h2")).to_have_text("Bob")
    expect(pa.page.get_by_role("button", name="Remove friend")).to_have_count(0)
    shot(pa.page, "alice-sees-bob-profile")

    # Reopened, Bob's page loads the friend list from the server: Carol, and no Alice.
    pb.page.close()
    pb.reopen()
    pb.wait_connected()
    pb.tab("friends")
    expect(pb.friend_item(carol.hashid)).to_be_visible()  # the list has arrived
    expect(pb.friend_item(alice.hashid)).to_have_count(0)
    pa.check_no_errors()
    pb.check_no_errors()


def test_leaving_a_group_updates_the_members_and_the_leavers_list(
        server, imboy, users, chromium, new_context, shot):
    alice, bob, carol = person(users, "Alice"), person(users, "Bob"), person(users, "Carol")
    imboy.friends.do_make_friends(alice.id, bob.id)
    imboy.friends.do_make_friends(alice.id, carol.id)
    gid = imboy.groups.create_group(alice.id, "Weekend trip", [bob.id, carol.id])["id"]
    pa, pb, pc = (logged_in(new_context, server, u) for u in (alice, bob, carol))

    # Everyone is in; Bob and Carol get Alice's first message.
    pa.tab("groups")
    pa.group_item(gid).click()
    pa.send("Who is coming on Saturday?")
    pa.expect_message("Who is coming on Saturday?", "sent")
    for chat in (pb, pc):
        chat.tab("groups")
        chat.group_item(gid).click()
        chat.expect_message("Who is coming on Saturday?")

    # Alice watches the member list while Bob leaves from his.
    pa.open_group_members(gid)
    expect(pa.page.locator(".members li.person")).to_have_count(3)
    expect(pa.member(bob.hashid)).to_contain_text("Bob")
    pb.leave_group(gid)

    # Bob: the group is gone from his group list.
    expect(pb.group_item(gid)).to_have_count(0)
    expect(pb.page.locator("#list li.empty")).to_have_text("No groups yet.")
    shot(pb.page, "bob-groups-after-leaving")

    # Alice: group_member_leave redraws the open member list without Bob.
    expect(pa.member(bob.hashid)).to_have_count(0)
    expect(pa.page.locator(".members li.person")).to_have_count(2)
    expect(pa.member(carol.hashid)).to_contain_text("Carol")
    shot(pa.page, "alice-members-after-bob-left")

    # The remaining members keep talking; Bob no longer gets their messages.
    pc.send("Not me, sorry")
    pc.expect_message("Not me, sorry", "sent")
    pa.page.get_by_role("link", name="Open chat").click()
    pa.expect_message("Not me, sorry")

    # Bob's recent chats keep the group's history under its name; the server refuses his messages.
    pb.tab("chats")
    item = pb.chat_item(f"g:{gid}")
    expect(item).to_contain_text("Weekend trip")
    item.click()
    expect(pb.page.locator("#conv-title")).to_have_text("Weekend trip")
    expect(pb.page.locator("#conv-status")).to_have_text("You are no longer a member")
    pb.expect_message("Who is coming on Saturday?")
    # Carol's message was sent after he left and stored only for Alice, so he never gets it.
    expect(pb.message("Not me, sorry")).to_have_count(0)
    pb.page.fill("#composer-input", "Wait, I'm back")
    pb.page.press("#composer-input", "Enter")
    pb.expect_message("Wait, I'm back", "failed")
    expect(pb.message("Wait, I'm back").locator(".msg-error")).to_contain_text("Not a member of this group")
    shot(pb.page, "bob-message-refused")
    expect(pc.message("Wait, I'm back")).to_have_count(0)
    for chat in (pa, pb, pc):
        chat.check_no_errors()
