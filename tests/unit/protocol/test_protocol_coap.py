"""CoAP codec and Particle catalogue against hand-written bytes (reference §1.4, §5)."""

from __future__ import annotations

import pytest

from fermion.protocol import coap
from fermion.protocol.coap import Code, Hello, Message, MessageType
from fermion.protocol.errors import ProtocolViolation

SHORT_HELLO = bytes.fromhex("50021235b168ff0006000100020006")
LONG_HELLO = bytes.fromhex(
    "50021235b168ff"
    "0006"  # product id
    "0001"  # product version
    "36"  # flags: diagnostics, immediate updates, goodbye, device-initiated describe
    "00"  # reserved
    "000c"  # platform id (Argon 12)
    "0000"  # device-id length: 0 on TCP
    "138c"  # system version 5004
    "03c0"  # max message size 960
    "00100000"  # max binary size
    "0200"  # OTA chunk size 512
)


def roundtrip(data: bytes) -> Message:
    message = Message.decode(data)
    assert message.encode() == data
    return message


def test_short_hello_both_ways():
    message = roundtrip(SHORT_HELLO)
    assert coap.is_hello(message) and message.type is MessageType.NON
    assert message.message_id == 0x1235
    assert Hello.decode(message.payload) == Hello(6, 1, 0x02, 6)
    assert coap.hello(0x1235, Hello(6, 1, 0x02, 6).encode()).encode() == SHORT_HELLO


def test_long_hello_of_device_os_5_both_ways():
    hello = Hello.decode(Message.decode(LONG_HELLO).payload)
    assert hello == Hello(
        product_id=6,
        product_version=1,
        flags=0x36,
        platform_id=12,
        system_version=5004,
        max_message_size=960,
        max_binary_size=0x100000,
        ota_chunk_size=512,
    )
    assert coap.HelloFlag.DEVICE_INITIATED_DESCRIBE in coap.HelloFlag(hello.flags)
    assert coap.hello(0x1235, hello.encode()).encode() == LONG_HELLO


def test_udp_hello_with_device_id():
    device_id = bytes.fromhex("3a0038000747343337373738")
    payload = bytes.fromhex("0006000100020006000c") + device_id
    assert Hello.decode(payload).device_id == device_id
    assert Hello(6, 1, 2, 6, device_id).encode() == payload


def test_server_hello_is_empty():
    assert coap.hello(0xABCD).encode() == bytes.fromhex("5002abcdb168")


def test_ping_and_its_ack():
    ping = roundtrip(bytes.fromhex("40001236"))
    assert ping.is_ping
    assert coap.ping(0x1236).encode() == bytes.fromhex("40001236")
    assert coap.empty_ack(0x1236).encode() == bytes.fromhex("60001236")


def test_public_event_with_default_ttl():
    data = bytes.fromhex("50021237b1650474656d7004726f6f6dff") + b"21.5"
    assert coap.event(0x1237, "temp/room", b"21.5").encode() == data
    info = coap.parse_event(roundtrip(data))
    assert info == coap.EventInfo("temp/room", b"21.5", private=False, ttl=60)


def test_private_event_with_max_age():
    data = bytes.fromhex("50021237b1450474656d7033000e10")
    assert coap.event(0x1237, "temp", private=True, ttl=3600).encode() == data
    assert coap.parse_event(roundtrip(data)) == coap.EventInfo("temp", b"", True, 3600)


def test_describe_post_with_query_byte():
    data = bytes.fromhex("40021238b1644101ff") + b'{"p":6,"m":[]}'
    assert coap.describe_post(0x1238, 0x01, b'{"p":6,"m":[]}').encode() == data
    assert coap.parse_describe(roundtrip(data)) == coap.DescribeInfo(1, b'{"p":6,"m":[]}')
    app = coap.parse_describe(Message.decode(bytes.fromhex("40021238b1644102ff7b7d")))
    assert app == coap.DescribeInfo(2, b"{}")


def test_time_request_and_piggy_backed_reply():
    request = roundtrip(bytes.fromhex("4101123907b174"))
    assert coap.is_time_request(request) and request.token == b"\x07"
    assert coap.time_request(0x1239, b"\x07").encode() == bytes.fromhex("4101123907b174")
    reply = coap.time_response(request, 0x654F1A00)
    assert reply.encode() == bytes.fromhex("6145123907ff654f1a00")
    assert coap.parse_time_response(reply) == 0x654F1A00


def test_subscription_with_my_devices_query():
    data = bytes.fromhex("4001123ab16508") + b"particle" + bytes.fromhex("4175")
    assert coap.subscribe(0x123A, "particle").encode() == data
    assert coap.parse_subscription(roundtrip(data)) == coap.SubscriptionInfo(
        "particle", True, (b"u",)
    )


def test_key_change_and_extended_option_encodings():
    assert coap.key_change(1).encode() == bytes.fromhex("40030001b16b")
    # Device OS's goodbye carries No-Response (258): delta 247 -> nibble 13, extension 234.
    goodbye = Message(
        MessageType.NON, Code.POST, 2, options=((11, b"x"), (258, b"")), payload=b"\x00"
    )
    assert goodbye.encode() == bytes.fromhex("50020002b178d0eaff00")
    # Delta >= 269 and length >= 269 use the 2-byte extensions.
    long_option = Message(MessageType.CON, Code.GET, 3, options=((2000, b"z" * 300),))
    encoded = long_option.encode()
    assert encoded[:7] == bytes.fromhex("40010003ee06c3") and encoded[7:9] == b"\x00\x1f"
    assert Message.decode(encoded) == long_option


def test_unknown_critical_options_are_reported_not_raised():
    message = Message.decode(bytes.fromhex("40010004d10a00"))  # option 23+? -> 11+13+10
    assert message.options == ((23, b"\x00"),)
    assert message.unknown_critical_options() == []  # Block2 (23) is known
    odd = Message.decode(bytes.fromhex("40010004d11e00"))  # option 43: critical, unknown
    assert odd.unknown_critical_options() == [43]
    even = Message.decode(bytes.fromhex("40010004d11f00"))  # option 44: elective
    assert even.unknown_critical_options() == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than a header"),
        (bytes.fromhex("800100"), "shorter than a header"),
        (bytes.fromhex("80010001"), "version 2"),
        (bytes.fromhex("49010001"), "token length 9"),
        (bytes.fromhex("42010001aa"), "token runs past"),
        (bytes.fromhex("40010001ff"), "no payload"),
        (bytes.fromhex("40010001f1"), "nibble 15"),
        (bytes.fromhex("400100011f"), "nibble 15"),
        (bytes.fromhex("40010001d1"), "extension runs past"),
        (bytes.fromhex("40010001b3aa"), "runs past the end"),
        (bytes.fromhex("40000001aa"), "empty CoAP message"),
    ],
)
def test_malformed_messages_raise_protocol_violation(data, reason):
    with pytest.raises(ProtocolViolation, match=reason):
        Message.decode(data)


@pytest.mark.parametrize("size", [0, 7, 9, 15, 19, 21])
def test_hello_payloads_of_other_sizes_are_refused(size):
    with pytest.raises(ProtocolViolation):
        Hello.decode(bytes(size))


def test_non_utf8_path_is_a_protocol_violation():
    message = Message.decode(bytes.fromhex("50020001b16501ffff00"))
    with pytest.raises(ProtocolViolation, match="UTF-8"):
        coap.parse_event(message)


def test_message_ids_wrap_at_16_bits():
    assert coap.next_message_id(0xFFFF) == 0
    assert coap.next_message_id(0x1234) == 0x1235
