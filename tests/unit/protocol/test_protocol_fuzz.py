"""Hypothesis fuzzing of every parser the network feeds.

Whatever arrives, the answer is an event (``NEED_DATA``, a ``Failure``...) or a
``ProtocolViolation`` (a ``FermionError``), never another exception.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fermion.errors import FermionError
from fermion.protocol import NEED_DATA, Failure, coap
from fermion.protocol.channel import Channel
from fermion.protocol.connection import DeviceConnection, HelloReceived, ServerConnection
from fermion.protocol.errors import ProtocolViolation
from fermion.protocol.handshake import (
    DeviceHandshake,
    DeviceIdentified,
    ServerHandshake,
    Session,
)

DEVICE_ID = bytes(range(12))
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return [p for p in pieces if p]


def drain(conn, on_event=None) -> list[object]:
    events = []
    for _ in range(10_000):  # a bound, so a loop bug fails instead of hanging
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if on_event is not None:
            on_event(event)
    raise AssertionError("next_event() never asked for more data")


@FUZZ
@given(
    data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=5), eof=st.booleans()
)
def test_server_handshake_survives_any_block(server_key, data, cuts, eof):
    server = ServerHandshake(server_key)
    server.initiate()
    events: list[object] = []
    for piece in chunks(data, cuts):
        server.receive_data(piece)
        events += drain(server)
    if eof:
        server.receive_data(b"")
        events += drain(server)
    assert all(isinstance(e, DeviceIdentified | Failure) for e in events)
    assert len(events) <= 1
    if len(data) >= 256 or eof:
        assert len(events) == 1


@FUZZ
@given(reply=st.binary(max_size=500), eof=st.booleans())
def test_device_handshake_survives_any_reply(server_key, device_key, reply, eof):
    device = DeviceHandshake(device_key, DEVICE_ID, server_key.public_key())
    device.receive_data(bytes(40))
    device.next_event()
    device.identify()
    device.receive_data(reply)
    if eof:
        device.receive_data(b"")
    events = drain(device)
    assert all(isinstance(e, Failure) for e in events)  # nothing random is a valid reply
    if len(reply) >= 384 or eof:
        assert len(events) == 1


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=300), max_frame=st.sampled_from([16, 64, 4096]))
def test_channel_survives_any_stream(data, max_frame):
    channel = Channel(Session.from_bytes(bytes(40)), max_frame=max_frame)
    channel.receive_data(data)
    try:
        for _ in range(100):
            if channel.next_message() is None:
                break
    except ProtocolViolation as violation:
        assert isinstance(violation, FermionError) and violation.reason


def exercise(message: coap.Message) -> None:
    """Every view a connection may take of a decoded message."""
    message.describe()
    message.unknown_critical_options()
    for parse in (
        coap.parse_event,
        coap.parse_describe,
        coap.parse_subscription,
        lambda m: m.uri_path,
        lambda m: m.max_age,
        coap.parse_time_response,
        lambda m: coap.Hello.decode(m.payload),
    ):
        with contextlib.suppress(ProtocolViolation):
            parse(message)


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=80))
def test_coap_decode_survives_anything_and_is_canonical(data):
    try:
        message = coap.Message.decode(data)
    except ProtocolViolation:
        return
    # The option encoding is canonical, so anything that decodes re-encodes to the same bytes.
    assert message.encode() == data
    exercise(message)


coap_like = st.builds(
    lambda head, options, payload: head + options + payload,
    st.sampled_from(
        [b"\x40\x00", b"\x50\x02", b"\x40\x01", b"\x41\x01", b"\x60\x45", b"\x70\x00"]
    ).flatmap(lambda h: st.binary(min_size=2, max_size=2).map(lambda mid: h + mid)),
    st.lists(
        st.sampled_from(
            [
                b"\xb1h",
                b"\xb1e",
                b"\xb1E",
                b"\xb1d",
                b"\xb1t",
                b"\x41\x01",
                b"\x33\x00\x00\x10",
                b"\xd1\x1e\x00",
                b"\x04name",
            ]
        ),
        max_size=4,
    ).map(b"".join),
    st.one_of(st.just(b""), st.binary(min_size=1, max_size=24).map(lambda p: b"\xff" + p)),
)


@settings(max_examples=1000, deadline=None)
@given(data=coap_like)
def test_coap_like_messages_decode_or_violate(data):
    with contextlib.suppress(ProtocolViolation):
        exercise(coap.Message.decode(data))


@settings(max_examples=1000, deadline=None)
@given(payload=st.binary(max_size=40))
def test_hello_decode_survives_anything(payload):
    try:
        hello = coap.Hello.decode(payload)
    except ProtocolViolation:
        return
    assert coap.Hello.decode(hello.encode()) == hello


@pytest.fixture
def connected_server(server_key, device_key):
    """A server connection past the handshake, and a channel speaking as the device."""

    def make() -> tuple[ServerConnection, Channel]:
        server = ServerConnection(server_key)
        device = DeviceHandshake(device_key, DEVICE_ID, server_key.public_key())
        server.initiate()
        device.receive_data(server.data_to_send())
        device.next_event()
        server.receive_data(device.identify())
        server.next_event()
        server.accept(device_key.public_key())
        device.receive_data(server.data_to_send())
        event = device.next_event()
        return server, Channel(event.session)

    return make


@FUZZ
@given(
    hello_first=st.booleans(),
    plaintexts=st.lists(coap_like | st.binary(max_size=40), max_size=5),
    garbage=st.binary(max_size=40),
    eof=st.booleans(),
)
def test_server_connection_survives_any_traffic(
    connected_server, hello_first, plaintexts, garbage, eof
):
    server, device_channel = connected_server()

    def answer(event: object) -> None:
        if isinstance(event, HelloReceived):
            server.send_hello()

    stream = b""
    if hello_first:
        stream += device_channel.send(coap.hello(1, bytes(8)).encode())
    for plaintext in plaintexts:
        stream += device_channel.send(plaintext)
    stream += garbage
    events: list[object] = []
    for i in range(0, len(stream), 7):
        server.receive_data(stream[i : i + 7])
        events += drain(server, answer)
    if eof:
        server.receive_data(b"")
        events += drain(server)
    failures = [e for e in events if isinstance(e, Failure)]
    assert len(failures) <= 1
    if failures:
        assert events[-1] is failures[0] and server.closed
        assert failures[0].reason


@FUZZ
@given(
    hello_first=st.booleans(),
    plaintexts=st.lists(coap_like | st.binary(max_size=40), max_size=5),
    garbage=st.binary(max_size=40),
    eof=st.booleans(),
)
def test_device_connection_survives_any_server_traffic(
    server_key, device_key, hello_first, plaintexts, garbage, eof
):
    server = ServerHandshake(server_key)
    device = DeviceConnection(device_key, DEVICE_ID, server_key.public_key(), coap.Hello())
    device.receive_data(server.initiate())
    drain(device)
    server.receive_data(device.data_to_send())
    server.next_event()
    device.receive_data(server.accept(device_key.public_key()))
    events = drain(device)
    assert server.session is not None
    server_channel = Channel(server.session)
    stream = b""
    if hello_first:
        stream += server_channel.send(coap.hello(7).encode())
    for plaintext in plaintexts:
        stream += server_channel.send(plaintext)
    stream += garbage
    for i in range(0, len(stream), 5):
        device.receive_data(stream[i : i + 5])
        events += drain(device)
    if eof:
        device.receive_data(b"")
        events += drain(device)
    failures = [e for e in events if isinstance(e, Failure)]
    assert len(failures) <= 1
    if failures:
        assert events[-1] is failures[0] and device.closed
