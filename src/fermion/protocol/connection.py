"""Handshake + channel + CoAP as one sans-IO connection per side.

The device server and the simulated device drive these the same way::

    conn.receive_data(chunk)                  # b"" when the peer closed
    while (event := conn.next_event()) is not NEED_DATA:
        handle(event)                         # may call conn.accept(...), conn.send_hello(), ...
    writer.write(conn.data_to_send())

Every call may queue bytes; ``data_to_send()`` drains them. Routine traffic is answered here
(pings get an ACK, time requests the time, other confirmable requests an empty ACK) and still
reported as events, so the caller only decides what needs a decision: which key to answer a
device with, whether to send the server Hello, what to do with events and Describes.

A ``Failure`` event is terminal: the connection is closed, ``failure`` holds it, nothing more
is sent, and later input is ignored. Nothing the peer sends raises out of ``next_event``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum, auto
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from fermion.protocol import coap
from fermion.protocol.channel import DEFAULT_MAX_FRAME, Channel
from fermion.protocol.errors import (
    NEED_DATA,
    Failure,
    NeedData,
    Outcome,
    ProtocolError,
    ProtocolViolation,
)
from fermion.protocol.handshake import (
    DeviceHandshake,
    DeviceIdentified,
    HandshakeStateError,
    Malformed,
    NonceReceived,
    PeerClosed,
    RandomSource,
    ServerHandshake,
    Session,
    SessionEstablished,
)

# ---------------------------------------------------------------------------------------------
# Events (besides DeviceIdentified, SessionEstablished and Failure from the handshake)


@dataclass(frozen=True)
class HelloReceived:
    """Server side: the device's Hello. Its decrypting and parsing proves the device holds the
    private key the session was encrypted to. Answer with ``send_hello()`` (within 4 s)."""

    hello: coap.Hello
    message_id: int


@dataclass(frozen=True)
class Connected:
    """Device side: the server's Hello arrived; the session is up."""

    payload: bytes


@dataclass(frozen=True)
class DescribeReceived:
    flags: int
    payload: bytes


# Events Device OS itself publishes after the handshake, which the cloud acts on: how many key
# errors the device saw since its last connection, and the claim code it was given at setup.
KEY_ERROR_EVENT = "spark/device/key/error"
CLAIM_CODE_EVENT = "spark/device/claim/code"


@dataclass(frozen=True)
class EventPublished:
    """An event from the peer (device publish, or a subscribed event the server forwards)."""

    name: str
    data: bytes
    private: bool
    ttl: int


@dataclass(frozen=True)
class TimeRequested:
    """Server side: the device asked the time; ``unix_time`` was sent back already."""

    unix_time: int


@dataclass(frozen=True)
class TimeReceived:
    unix_time: int


@dataclass(frozen=True)
class PingReceived:
    """A ping from the peer; the ACK was queued already."""

    message_id: int


@dataclass(frozen=True)
class SubscriptionRequested:
    prefix: str
    my_devices: bool


@dataclass(frozen=True)
class AckReceived:
    """An ACK (empty or piggy-backed) to a confirmable message this side sent."""

    message: coap.Message


@dataclass(frozen=True)
class DescribeRequested:
    """Device side: the server asked for a Describe; answer ``respond(message, CONTENT, json)``."""

    flags: int
    message: coap.Message


@dataclass(frozen=True)
class RequestReceived:
    """Device side: any other server request (function, variable, key change...); answer it
    with ``respond()``, whose piggy-backed ACK carries the result."""

    message: coap.Message


@dataclass(frozen=True)
class MessageReceived:
    """Any other CoAP message (confirmable ones were ACKed already)."""

    message: coap.Message


@dataclass(frozen=True)
class Closed:
    """The peer closed an established session cleanly (between messages)."""


ServerEvent = (
    DeviceIdentified
    | HelloReceived
    | DescribeReceived
    | EventPublished
    | TimeRequested
    | PingReceived
    | SubscriptionRequested
    | AckReceived
    | MessageReceived
    | Closed
    | Failure
    | NeedData
)
DeviceEvent = (
    SessionEstablished
    | Connected
    | DescribeReceived
    | EventPublished
    | TimeReceived
    | PingReceived
    | AckReceived
    | DescribeRequested
    | RequestReceived
    | MessageReceived
    | Closed
    | Failure
    | NeedData
)


class ConnectionState(Enum):
    HANDSHAKE = auto()
    AWAIT_HELLO = auto()  # server: waiting for the device's Hello; device: for the server's
    CONNECTED = auto()
    CLOSED = auto()


class _Endpoint:
    """What both sides share: the outbox, the channel once there is one, and closing."""

    # Slots, here and in the handshake and channel: a server holds one of each per connected
    # device, and a per-instance dict would be most of what a connection costs in memory.
    __slots__ = (
        "_channel",
        "_counter",
        "_eof",
        "_max_frame",
        "_outbox",
        "failure",
        "session",
        "state",
    )

    def __init__(self, max_frame: int) -> None:
        self._outbox = bytearray()
        self._channel: Channel | None = None
        self._max_frame = max_frame
        self._eof = False
        self._counter = 0  # id of the last non-ACK message this side sent
        self.state = ConnectionState.HANDSHAKE
        self.failure: Failure | None = None
        self.session: Session | None = None

    def data_to_send(self) -> bytes:
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    @property
    def closed(self) -> bool:
        return self.state is ConnectionState.CLOSED

    def close(self) -> None:
        """Stop: queue nothing more and ignore further input (the caller closes the socket)."""
        self.state = ConnectionState.CLOSED

    def timed_out(self, waiting_for: str) -> Failure:
        """The I/O layer's timer ran out; close and return the failure to record.

        Timers live with the I/O (this package has no clock of its own); ``state`` tells the
        caller which step it is waiting on, and so which timeout applies.
        """
        return self._fail(
            Failure(
                f"timed out waiting for {waiting_for}",
                Outcome.TIMEOUT,
                ProtocolError.MESSAGE_TIMEOUT,
            )
        )

    def _fail(self, failure: Failure) -> Failure:
        self.failure = failure
        self.state = ConnectionState.CLOSED
        return failure

    def _open_channel(self, session: Session, trailing: bytes) -> None:
        self.session = session
        self._channel = Channel(session, max_frame=self._max_frame)
        self._channel.receive_data(trailing)

    def _write(self, message: coap.Message) -> None:
        # Sending on a connection that already failed is a no-op, not an error: the caller may
        # still be reacting to an event that preceded the failure in the same read.
        if self.closed:
            return
        if self._channel is None:
            raise HandshakeStateError("no open session to send on")
        self._outbox += self._channel.send(message.encode())

    def _next_id(self) -> int:
        self._counter = coap.next_message_id(self._counter)
        return self._counter

    def _read_message(self) -> coap.Message | Closed | Failure | None:
        """The next CoAP message off the channel, a terminal event, or None (need data)."""
        assert self._channel is not None
        try:
            plaintext = self._channel.next_message()
            if plaintext is None:
                if not self._eof:
                    return None
                if self._channel.buffered:
                    return self._fail(Malformed("connection closed in the middle of a frame"))
                if self.state is ConnectionState.AWAIT_HELLO:
                    return self._fail(PeerClosed("peer closed before its Hello"))
                self.state = ConnectionState.CLOSED
                return Closed()
            message = coap.Message.decode(plaintext)
            unknown = message.unknown_critical_options()
            if unknown:
                raise ProtocolViolation(
                    f"unknown critical CoAP option {unknown[0]} in {message.describe()}"
                )
            return message
        except ProtocolViolation as violation:
            return self._fail(Failure.from_violation(violation))

    def _answer_common(
        self, message: coap.Message
    ) -> PingReceived | AckReceived | EventPublished | None:
        """Handle what both sides treat alike; None when the caller's side must look."""
        if message.is_ping:
            self._write(coap.empty_ack(message.message_id))
            return PingReceived(message.message_id)
        if message.type is coap.MessageType.ACK:
            return AckReceived(message)
        info = coap.parse_event(message)
        if info is not None:
            if message.type is coap.MessageType.CON:
                self._write(coap.empty_ack(message.message_id))
            return EventPublished(info.name, info.data, info.private, info.ttl)
        return None

    def _ack_if_confirmable(self, message: coap.Message) -> None:
        if message.type is coap.MessageType.CON:
            self._write(coap.empty_ack(message.message_id))


class ServerConnection(_Endpoint):
    """The cloud's end of one device connection.

    ``initiate()`` queues the nonce. ``DeviceIdentified`` asks the caller to look the device up
    and call ``accept(public_key)`` (or ``reject(outcome, reason)``). ``HelloReceived`` asks for
    ``send_hello()``. Message-id rules (reference §1.4): the device's Hello sets the receive
    counter and every later non-ACK, non-RST message must carry the next id; the server's own
    counter starts at a random value in 1..65535 and its Hello carries that plus one.
    """

    __slots__ = (
        "_clock",
        "_describe_requests",
        "_handshake",
        "_random",
        "_receive_counter",
        "hello",
        "identified",
    )

    def __init__(
        self,
        server_key: rsa.RSAPrivateKey,
        previous_server_key: rsa.RSAPrivateKey | None = None,
        *,
        random: RandomSource = os.urandom,
        clock: Callable[[], float] = time.time,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        super().__init__(max_frame)
        self._handshake = ServerHandshake(
            server_key, previous_server_key, random=random, max_early_data=max_frame + 2
        )
        self._random = random
        self._clock = clock
        self._receive_counter = 0
        self._describe_requests: dict[int, int] = {}
        self.identified: DeviceIdentified | None = None
        self.hello: coap.Hello | None = None

    @property
    def device_id(self) -> bytes | None:
        return None if self.identified is None else self.identified.device_id

    def initiate(self) -> None:
        self._outbox += self._handshake.initiate()

    def receive_data(self, data: bytes) -> None:
        if self.closed:
            return
        if not data:
            self._eof = True
        if self._channel is None:
            self._handshake.receive_data(data)
        elif data:
            self._channel.receive_data(data)

    def accept(self, device_public_key: rsa.RSAPublicKey) -> None:
        """Answer the identified device with a session key encrypted to ``device_public_key``.

        A no-op once the connection has failed or timed out while the caller was deciding.
        """
        if self.closed:
            return
        self._outbox += self._handshake.accept(device_public_key)
        assert self._handshake.session is not None
        self._open_channel(self._handshake.session, self._handshake.trailing_data())
        self.state = ConnectionState.AWAIT_HELLO

    def reject(self, outcome: Outcome, reason: str) -> Failure:
        """Refuse the identified device (unknown id, key refused); the caller hangs up."""
        if self.failure is not None:
            return self.failure  # it failed first (timeout, early data); keep that outcome
        failure = Failure(reason, outcome, ProtocolError.IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY)
        self._handshake.reject(failure)
        return self._fail(failure)

    def send_hello(self) -> None:
        """The server's Hello (NON POST /h, empty payload), id = random start + 1."""
        if self.closed:
            return
        if self.state is not ConnectionState.AWAIT_HELLO or self.hello is None:
            raise HandshakeStateError("send_hello() before the device's Hello")
        start = int.from_bytes(self._random(2), "big") % 0xFFFF + 1
        self._counter = start
        self._write(coap.hello(self._next_id()))
        self.state = ConnectionState.CONNECTED

    def send_event(
        self, name: str, data: bytes = b"", *, private: bool = False, ttl: int = 60
    ) -> None:
        self._write(coap.event(self._next_id(), name, data, private=private, ttl=ttl))

    def request_describe(
        self, flags: int = coap.DescribeFlag.SYSTEM | coap.DescribeFlag.APPLICATION
    ) -> int:
        message_id = self._next_id()
        _remember(self._describe_requests, message_id, flags)
        self._write(coap.describe_request(message_id, flags))
        return message_id

    def send_message(self, message: coap.Message) -> int:
        """Send any catalogue message; its id is replaced by the next server id."""
        message_id = self._next_id()
        self._write(replace(message, message_id=message_id))
        return message_id

    def next_event(self) -> ServerEvent:
        if self.closed:
            return NEED_DATA
        if self.state is ConnectionState.HANDSHAKE:
            # While the caller decides on a DeviceIdentified, this only checks the early-data
            # bound; it returns NEED_DATA until accept() or reject().
            event = self._handshake.next_event()
            if isinstance(event, Failure):
                return self._fail(event)
            if isinstance(event, DeviceIdentified):
                self.identified = event
            return event
        message = self._read_message()
        if message is None or isinstance(message, Closed | Failure):
            return NEED_DATA if message is None else message
        try:
            return self._dispatch(message)
        except ProtocolViolation as violation:
            return self._fail(Failure.from_violation(violation))

    def _dispatch(self, message: coap.Message) -> ServerEvent:
        if self.hello is None:
            if not coap.is_hello(message):
                raise ProtocolViolation(f"expected the device's Hello, got {message.describe()}")
            hello = coap.Hello.decode(message.payload)
            if hello.device_id and hello.device_id != self.device_id:
                raise ProtocolViolation(
                    f"Hello names device {hello.device_id.hex()}, the handshake named "
                    f"{(self.device_id or b'').hex()}"
                )
            self.hello = hello
            self._receive_counter = message.message_id
            return HelloReceived(hello, message.message_id)
        if message.type not in (coap.MessageType.ACK, coap.MessageType.RST):
            expected = coap.next_message_id(self._receive_counter)
            if message.message_id != expected:
                raise ProtocolViolation(
                    f"bad counter: message id {message.message_id}, expected {expected}"
                )
            self._receive_counter = expected
        if message.type is coap.MessageType.ACK and message.message_id in self._describe_requests:
            flags = self._describe_requests.pop(message.message_id)
            if message.payload:
                return DescribeReceived(flags, message.payload)
        common = self._answer_common(message)
        if common is not None:
            return common
        if coap.is_time_request(message):
            now = int(self._clock())
            self._write(coap.time_response(message, now))
            return TimeRequested(now)
        describe = coap.parse_describe(message)
        if describe is not None:
            self._ack_if_confirmable(message)
            return DescribeReceived(describe.flags, describe.payload)
        subscription = coap.parse_subscription(message)
        if subscription is not None:
            self._ack_if_confirmable(message)
            return SubscriptionRequested(subscription.prefix, subscription.my_devices)
        self._ack_if_confirmable(message)
        return MessageReceived(message)


class DeviceConnection(_Endpoint):
    """A device's end: answers the nonce, checks the reply, sends its Hello, waits for the
    server's. Message ids start from the session salt (little-endian) and each non-ACK message
    carries the next one; the Hello is the first.
    """

    __slots__ = ("_handshake", "_hello", "_pending_time")

    def __init__(
        self,
        device_key: rsa.RSAPrivateKey,
        device_id: bytes,
        server_public_key: rsa.RSAPublicKey,
        hello: coap.Hello,
        *,
        public_key_der: bytes | None = None,
        send_public_key: bool = True,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        super().__init__(max_frame)
        self._handshake = DeviceHandshake(
            device_key,
            device_id,
            server_public_key,
            public_key_der=public_key_der,
            send_public_key=send_public_key,
        )
        self._hello = hello
        self._pending_time: dict[int, None] = {}

    def receive_data(self, data: bytes) -> None:
        if self.closed:
            return
        if not data:
            self._eof = True
        if self._channel is None:
            self._handshake.receive_data(data)
        elif data:
            self._channel.receive_data(data)

    def next_event(self) -> DeviceEvent:
        if self.closed:
            return NEED_DATA
        if self.state is ConnectionState.HANDSHAKE:
            event = self._handshake.next_event()
            if isinstance(event, NonceReceived):
                self._outbox += self._handshake.identify()
                return self.next_event()
            if isinstance(event, Failure):
                return self._fail(event)
            if isinstance(event, SessionEstablished):
                self._open_channel(event.session, self._handshake.trailing_data())
                self._counter = event.session.first_message_id
                self._write(coap.hello(self._next_id(), self._hello.encode()))
                self.state = ConnectionState.AWAIT_HELLO
            return event
        message = self._read_message()
        if message is None or isinstance(message, Closed | Failure):
            return NEED_DATA if message is None else message
        try:
            return self._dispatch(message)
        except ProtocolViolation as violation:
            return self._fail(Failure.from_violation(violation))

    def _dispatch(self, message: coap.Message) -> DeviceEvent:
        if self.state is ConnectionState.AWAIT_HELLO:
            if not coap.is_hello(message):
                raise ProtocolViolation(f"expected the server's Hello, got {message.describe()}")
            self.state = ConnectionState.CONNECTED
            return Connected(message.payload)
        if message.type is coap.MessageType.ACK and message.message_id in self._pending_time:
            del self._pending_time[message.message_id]
            return TimeReceived(coap.parse_time_response(message))
        common = self._answer_common(message)
        if common is not None:
            return common
        if message.is_request:
            # Not ACKed here: the answer (a Describe, a function result, a variable) rides on
            # the ACK, so the caller sends it with respond().
            if message.code == coap.Code.GET and message.uri_path[:1] == ["d"]:
                return DescribeRequested(_query_flags(message), message)
            return RequestReceived(message)
        self._ack_if_confirmable(message)
        return MessageReceived(message)

    # -- what a device sends -------------------------------------------------------------------

    def publish(
        self,
        name: str,
        data: bytes = b"",
        *,
        private: bool = False,
        ttl: int = coap.DEFAULT_EVENT_TTL,
    ) -> int:
        message_id = self._next_id()
        self._write(coap.event(message_id, name, data, private=private, ttl=ttl))
        return message_id

    def ping(self) -> int:
        message_id = self._next_id()
        self._write(coap.ping(message_id))
        return message_id

    def request_time(self) -> int:
        message_id = self._next_id()
        _remember(self._pending_time, message_id, None)
        self._write(coap.time_request(message_id, token=bytes((message_id & 0xFF,))))
        return message_id

    def send_describe(self, flags: int, payload: bytes) -> int:
        message_id = self._next_id()
        self._write(coap.describe_post(message_id, flags, payload))
        return message_id

    def subscribe(self, prefix: str, *, my_devices: bool = True) -> int:
        message_id = self._next_id()
        self._write(coap.subscribe(message_id, prefix, my_devices=my_devices))
        return message_id

    def send_message(self, message: coap.Message) -> int:
        """Send any catalogue message; its id is replaced by the device's next id."""
        message_id = self._next_id()
        self._write(replace(message, message_id=message_id))
        return message_id

    def respond(self, request: coap.Message, code: int, payload: bytes = b"") -> None:
        """A piggy-backed ACK to a server request (e.g. 2.05 with the Describe JSON)."""
        self._write(
            coap.Message(
                coap.MessageType.ACK, code, request.message_id, request.token, payload=payload
            )
        )


# A peer that never answers must not grow these maps: only the latest few requests are matched.
MAX_PENDING_REQUESTS = 8


def _remember(pending: dict[int, Any], message_id: int, value: Any) -> None:
    pending[message_id] = value
    while len(pending) > MAX_PENDING_REQUESTS:
        del pending[next(iter(pending))]


def _query_flags(message: coap.Message) -> int:
    """The Describe flags of a ``GET /d`` (its 1-byte query; system + application if absent)."""
    for value in message.uri_query:
        if len(value) == 1:
            return value[0]
    return int(coap.DescribeFlag.SYSTEM | coap.DescribeFlag.APPLICATION)
