"""Device and server connections talking in memory through whole sessions.

The wire delivers each side's output whole, one byte at a time, or merged with what follows,
so the state machines see every split a TCP stream can produce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from fermion.protocol import NEED_DATA, Failure, Outcome, ProtocolError, coap
from fermion.protocol.channel import Channel
from fermion.protocol.connection import (
    AckReceived,
    Closed,
    Connected,
    DescribeReceived,
    DescribeRequested,
    DeviceConnection,
    EventPublished,
    HelloReceived,
    PingReceived,
    ServerConnection,
    SubscriptionRequested,
    TimeReceived,
    TimeRequested,
)
from fermion.protocol.handshake import (
    DeviceIdentified,
    PeerClosed,
    ServerKeyMismatch,
    SessionEstablished,
    SessionKeyUndecryptable,
)

NONCE = bytes(range(40))
SESSION = bytes(range(0x80, 0x80 + 32)) + bytes.fromhex("feff000000000000")  # counter 0xFFFE
SERVER_COUNTER_SEED = b"\x12\x34"
DEVICE_ID = bytes.fromhex("e00fce68d1a3ef2fd6b9c3c1")
NOW = 1_700_000_000
HELLO = coap.Hello(
    product_id=0xFFFF,
    product_version=0xFFFF,
    flags=0x36,
    platform_id=6,
    system_version=5004,
    max_message_size=960,
    max_binary_size=0x100000,
    ota_chunk_size=512,
)


@dataclass
class Wire:
    server: ServerConnection
    device: DeviceConnection
    mode: str = "whole"
    server_events: list[object] = field(default_factory=list)
    device_events: list[object] = field(default_factory=list)
    up: bytearray = field(default_factory=bytearray)  # device -> server, as sent
    down: bytearray = field(default_factory=bytearray)  # server -> device, as sent
    on_server_event: Callable[[object], None] | None = None

    def _deliver(self, data: bytes, to: ServerConnection | DeviceConnection) -> None:
        if self.mode == "bytes":
            for byte in data:
                to.receive_data(bytes((byte,)))
                self._drain(to)
        else:
            to.receive_data(data)
            self._drain(to)

    def _drain(self, conn: ServerConnection | DeviceConnection) -> None:
        while (event := conn.next_event()) is not NEED_DATA:
            if conn is self.server:
                self.server_events.append(event)
                if self.on_server_event is not None:
                    self.on_server_event(event)
            else:
                self.device_events.append(event)

    def run(self) -> None:
        """Shovel bytes both ways until neither side has anything to say."""
        while True:
            down = self.server.data_to_send()
            self.down += down
            if down:
                self._deliver(down, self.device)
            up = self.device.data_to_send()
            self.up += up
            if up:
                self._deliver(up, self.server)
            if not down and not up:
                return


def accept_with(key) -> Callable[[Wire], Callable[[object], None]]:
    def make(wire: Wire) -> Callable[[object], None]:
        def decide(event: object) -> None:
            if isinstance(event, DeviceIdentified):
                wire.server.accept(key.public_key())
            elif isinstance(event, HelloReceived):
                wire.server.send_hello()

        return decide

    return make


def connect(
    server_key, device_key, script, *, mode="whole", stored_key=None, server_kwargs=None, **device
):
    server = ServerConnection(
        server_key,
        random=script(NONCE, SESSION, SERVER_COUNTER_SEED),
        clock=lambda: NOW + 0.9,
        **(server_kwargs or {}),
    )
    conn = DeviceConnection(
        device_key, DEVICE_ID, server_key.public_key(), device.pop("hello", HELLO), **device
    )
    wire = Wire(server, conn, mode)
    wire.on_server_event = accept_with(stored_key or device_key)(wire)
    server.initiate()
    wire.run()
    return wire


def decode_stream(data: bytes, skip: int) -> list[coap.Message]:
    """Every CoAP message in one direction, decrypted with a fresh channel from the session."""
    from fermion.protocol.handshake import Session

    channel = Channel(Session.from_bytes(SESSION))
    channel.receive_data(data[skip:])
    messages = []
    while (plaintext := channel.next_message()) is not None:
        messages.append(coap.Message.decode(plaintext))
    return messages


@pytest.mark.parametrize("mode", ["whole", "bytes"])
def test_a_whole_session(server_key, device_key, script, mode):
    wire = connect(server_key, device_key, script, mode=mode)
    server, device = wire.server, wire.device
    assert [type(e) for e in wire.server_events] == [DeviceIdentified, HelloReceived]
    assert wire.server_events[1].hello == HELLO
    assert [type(e) for e in wire.device_events] == [SessionEstablished, Connected]
    assert server.session == device.session

    # Everything a Device OS 5.x device sends after the Hello (reference §5), queued at once so
    # the frames reach the server merged into one read (or byte by byte).
    device.send_describe(coap.DescribeFlag.SYSTEM, b'{"p":6,"m":[]}')
    device.publish("particle/device/updates/enabled", b"true", private=True)
    device.publish("particle/device/updates/forced", b"false", private=True)
    device.request_time()
    device.send_describe(coap.DescribeFlag.APPLICATION, b'{"f":[],"v":{}}')
    device.subscribe("particle")
    device.subscribe("spark")
    device.publish("temperature", b"21.5", ttl=3600)
    device.ping()
    wire.server_events.clear()
    wire.device_events.clear()
    wire.run()

    assert wire.server_events == [
        DescribeReceived(1, b'{"p":6,"m":[]}'),
        EventPublished("particle/device/updates/enabled", b"true", True, 60),
        EventPublished("particle/device/updates/forced", b"false", True, 60),
        TimeRequested(NOW),
        DescribeReceived(2, b'{"f":[],"v":{}}'),
        SubscriptionRequested("particle", True),
        SubscriptionRequested("spark", True),
        EventPublished("temperature", b"21.5", False, 3600),
        PingReceived(wire.server_events[8].message_id),
    ]
    # Confirmables got empty ACKs, the time request its time, in order.
    kinds = [type(e) for e in wire.device_events]
    assert kinds == [AckReceived, TimeReceived, AckReceived, AckReceived, AckReceived, AckReceived]
    assert TimeReceived(NOW) in wire.device_events

    # The server talks back: a subscribed event and a Describe request the device answers.
    server.send_event("spark/status", b"online")
    describe_id = server.request_describe(coap.DescribeFlag.APPLICATION)
    wire.device_events.clear()
    wire.server_events.clear()
    wire.run()
    assert wire.device_events[0] == EventPublished("spark/status", b"online", False, 60)
    request = wire.device_events[1]
    assert isinstance(request, DescribeRequested) and request.flags == 2
    assert request.message.message_id == describe_id
    device.respond(request.message, coap.Code.CONTENT, b'{"f":["x"]}')
    wire.run()
    assert wire.server_events == [DescribeReceived(2, b'{"f":["x"]}')]

    # Clean hang-up between messages.
    server.receive_data(b"")
    assert server.next_event() == Closed()

    # Message ids on the wire: the device's start from the salt (fe ff, little-endian 0xFFFE)
    # plus one and wrap at 16 bits; the server's Hello is its random start (0x1234 + 1) plus one.
    up = decode_stream(bytes(wire.up), skip=256)
    down = decode_stream(bytes(wire.down), skip=40 + 384)
    assert up[0].message_id == 0xFFFF
    assert down[0].message_id == 0x1236 and coap.is_hello(down[0])
    device_ids = [m.message_id for m in up if m.type is not coap.MessageType.ACK]
    assert device_ids == [(0xFFFF + i) % 0x10000 for i in range(len(device_ids))]
    assert down[1].type is coap.MessageType.ACK and down[1].message_id == up[1].message_id


def test_outputs_merged_across_steps_are_taken_apart(server_key, device_key, script):
    """The device's Hello and first messages, and the server's reply bytes, in single reads."""
    server = ServerConnection(server_key, random=script(NONCE, SESSION, SERVER_COUNTER_SEED))
    device = DeviceConnection(device_key, DEVICE_ID, server_key.public_key(), HELLO)
    server.initiate()
    device.receive_data(server.data_to_send())
    assert device.next_event() is NEED_DATA
    server.receive_data(device.data_to_send())
    identified = server.next_event()
    assert isinstance(identified, DeviceIdentified)
    server.accept(device_key.public_key())
    device.receive_data(server.data_to_send())
    assert isinstance(device.next_event(), SessionEstablished)
    device.publish("early")  # queued right behind the Hello: one read carries both frames
    server.receive_data(device.data_to_send())
    assert isinstance(server.next_event(), HelloReceived)
    assert server.next_event() == EventPublished("early", b"", False, 60)
    server.send_hello()
    device.receive_data(server.data_to_send())
    assert isinstance(device.next_event(), Connected)


def test_key_mismatch_candidate_proves_possession_then_closes(
    server_key, device_key, other_device_key, script
):
    """The cloud answers with the key the device presented; a Hello that parses proves it."""
    presented: list[bytes | None] = []

    def make(wire: Wire) -> Callable[[object], None]:
        def decide(event: object) -> None:
            if isinstance(event, DeviceIdentified):
                presented.append(event.presented_public_key_der)
                wire.server.accept(device_key.public_key())  # stands for the parsed candidate
            elif isinstance(event, HelloReceived):
                wire.server.close()

        return decide

    server = ServerConnection(server_key, random=script(NONCE, SESSION, SERVER_COUNTER_SEED))
    device = DeviceConnection(device_key, DEVICE_ID, server_key.public_key(), HELLO)
    wire = Wire(server, device)
    wire.on_server_event = make(wire)
    server.initiate()
    wire.run()
    assert isinstance(wire.server_events[-1], HelloReceived)
    assert server.closed and presented[0] is not None
    device.receive_data(b"")
    failure = device.next_event()
    assert isinstance(failure, PeerClosed)


def test_server_answering_with_the_stored_old_key_gives_the_device_error_6(
    server_key, device_key, other_device_key, script
):
    wire = connect(server_key, device_key, script, stored_key=other_device_key)
    failure = wire.device_events[-1]
    assert isinstance(failure, SessionKeyUndecryptable)
    assert failure.protocol_error == 6
    assert wire.device.closed


def test_refused_device_sees_the_hang_up_as_error_26(server_key, device_key, script):
    server = ServerConnection(server_key, random=script(NONCE))
    device = DeviceConnection(device_key, DEVICE_ID, server_key.public_key(), HELLO)
    server.initiate()
    device.receive_data(server.data_to_send())
    device.next_event()
    server.receive_data(device.data_to_send())
    assert isinstance(server.next_event(), DeviceIdentified)
    failure = server.reject(Outcome.UNKNOWN_DEVICE, "no device e00fce68d1a3ef2fd6b9c3c1")
    assert failure.outcome is Outcome.UNKNOWN_DEVICE and server.closed
    device.receive_data(b"")
    assert device.next_event().protocol_error == ProtocolError.IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY


def test_device_holding_another_clouds_key_is_a_server_key_mismatch(
    server_key, other_cloud_key, device_key, script
):
    server = ServerConnection(server_key, random=script(NONCE))
    device = DeviceConnection(device_key, DEVICE_ID, other_cloud_key.public_key(), HELLO)
    server.initiate()
    device.receive_data(server.data_to_send())
    device.next_event()
    server.receive_data(device.data_to_send())
    event = server.next_event()
    assert isinstance(event, ServerKeyMismatch) and server.failure == event


def failing_server_event(wire: Wire) -> Failure:
    failure = wire.server_events[-1]
    assert isinstance(failure, Failure), wire.server_events
    assert failure.outcome is Outcome.MALFORMED
    assert wire.server.closed and wire.server.data_to_send() == b""
    return failure


def test_bad_counter_closes_the_connection(server_key, device_key, script):
    wire = connect(server_key, device_key, script)
    wire.device._counter += 5
    wire.device.publish("skipped")
    wire.run()
    assert "bad counter" in failing_server_event(wire).reason


def test_hello_for_another_device_is_refused(server_key, device_key, script):
    other = coap.Hello(6, 1, 0, 6, device_id=bytes(12))
    wire = connect(server_key, device_key, script, hello=other)
    assert "Hello names device" in failing_server_event(wire).reason


def test_unknown_critical_option_is_an_error_event(server_key, device_key, script):
    wire = connect(server_key, device_key, script)
    wire.device.send_message(
        coap.Message(coap.MessageType.CON, coap.Code.POST, 0, b"", ((43, b""),))
    )
    wire.run()
    assert "unknown critical CoAP option 43" in failing_server_event(wire).reason


def test_frame_longer_than_the_limit_closes(server_key, device_key, script):
    wire = connect(server_key, device_key, script, server_kwargs={"max_frame": 64})
    wire.device.publish("big", b"x" * 200)
    wire.run()
    assert "longer than the limit" in failing_server_event(wire).reason


def test_garbage_after_the_handshake_closes(server_key, device_key, script):
    wire = connect(server_key, device_key, script)
    wire.server.receive_data(b"\x00\x20" + bytes(32))
    assert isinstance(wire.server.next_event(), Failure)
    assert wire.server.failure.outcome is Outcome.MALFORMED


def test_first_message_must_be_the_hello(server_key, device_key, script):
    server = ServerConnection(server_key, random=script(NONCE, SESSION))
    device = DeviceConnection(device_key, DEVICE_ID, server_key.public_key(), HELLO)
    server.initiate()
    device.receive_data(server.data_to_send())
    device.next_event()
    server.receive_data(device.data_to_send())
    server.next_event()
    server.accept(device_key.public_key())
    device.receive_data(server.data_to_send())
    device.next_event()
    device.data_to_send()  # drop the Hello on the floor
    device.ping()
    server.receive_data(device.data_to_send())
    failure = server.next_event()
    assert isinstance(failure, Failure)
    # The Hello was dropped, so the ping is encrypted with an IV the server does not expect:
    # either the padding or the Hello check catches it.
    assert failure.outcome is Outcome.MALFORMED


def test_a_timeout_from_the_io_layer_is_recorded_as_an_outcome(server_key, script):
    server = ServerConnection(server_key, random=script(NONCE))
    server.initiate()
    failure = server.timed_out("the key block")
    assert failure.outcome is Outcome.TIMEOUT and server.failure is failure
    assert server.closed and server.next_event() is NEED_DATA
    server.receive_data(b"late bytes are ignored")
    assert server.next_event() is NEED_DATA


def identified_server(server_key, device_key, script) -> ServerConnection:
    server = ServerConnection(server_key, random=script(NONCE, SESSION, SERVER_COUNTER_SEED))
    device = DeviceConnection(device_key, DEVICE_ID, server_key.public_key(), HELLO)
    server.initiate()
    device.receive_data(server.data_to_send())
    device.next_event()
    server.receive_data(device.data_to_send())
    assert isinstance(server.next_event(), DeviceIdentified)
    return server


def test_a_device_streaming_bytes_before_the_reply_is_cut_off(server_key, device_key, script):
    server = identified_server(server_key, device_key, script)
    server.receive_data(bytes(4096))  # one frame's worth is tolerated while the caller decides
    assert server.next_event() is NEED_DATA
    server.receive_data(bytes(100))
    failure = server.next_event()
    assert isinstance(failure, Failure) and failure.outcome is Outcome.MALFORMED
    assert "after its key block" in failure.reason
    # The caller's late decision changes nothing and sends nothing.
    server.accept(device_key.public_key())
    assert server.closed and server.data_to_send() == b""
    assert server.reject(Outcome.UNKNOWN_DEVICE, "late") is failure


def test_accept_after_a_timeout_is_a_no_op(server_key, device_key, script):
    server = identified_server(server_key, device_key, script)
    server.data_to_send()
    server.timed_out("the device lookup")
    server.accept(device_key.public_key())
    assert server.data_to_send() == b"" and server.failure.outcome is Outcome.TIMEOUT
