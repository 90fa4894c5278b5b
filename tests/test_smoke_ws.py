from .helpers import WsClient


def test_c2c_between_friends(imboy, server, users):
    a, b = users(2)
    imboy.friends.do_make_friends(a.id, b.id)
    ca = WsClient(server.ws_url, a.token)
    cb = WsClient(server.ws_url, b.token)
    ca.send_json({"id": "m1", "type": "C2C", "to": b.hashid, "payload": {"text": "hi"}})
    ack = ca.expect_type("C2C_SERVER_ACK")
    msg = cb.expect_type("C2C")
    assert msg["payload"] == {"text": "hi"} and msg["server_ts"] == ack["server_ts"]
    ca.close(); cb.close()
