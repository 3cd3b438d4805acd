"""CoAP (RFC 7252) messages and the Particle message catalogue (reference §1.4 and §5).

``Message.decode`` turns bytes into a ``Message`` or raises ``ProtocolViolation``; it never
raises anything else, whatever the input. ``Message.encode`` is its inverse. The functions
below the codec build and recognise the messages a Particle device and server exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from fermion.protocol.errors import ProtocolViolation

VERSION = 1
MAX_TOKEN_LENGTH = 8
PAYLOAD_MARKER = 0xFF
MESSAGE_ID_MODULUS = 0x10000
DEFAULT_EVENT_TTL = 60
MAX_EVENT_TTL = 0xFFFFFF  # Device OS: MAX_EVENT_TTL_SECONDS (3-byte Max-Age)


class MessageType(IntEnum):
    CON = 0
    NON = 1
    ACK = 2
    RST = 3


class Code(IntEnum):
    """Codes as the header byte carries them: class << 5 | detail."""

    EMPTY = 0x00
    GET = 0x01
    POST = 0x02
    PUT = 0x03
    DELETE = 0x04
    CREATED = 0x41
    DELETED = 0x42
    VALID = 0x43
    CHANGED = 0x44
    CONTENT = 0x45
    BAD_REQUEST = 0x80
    UNAUTHORIZED = 0x81
    BAD_OPTION = 0x82
    FORBIDDEN = 0x83
    NOT_FOUND = 0x84
    METHOD_NOT_ALLOWED = 0x85
    INTERNAL_SERVER_ERROR = 0xA0
    NOT_IMPLEMENTED = 0xA1
    SERVICE_UNAVAILABLE = 0xA3


def code_text(code: int) -> str:
    """``2.05`` style text for any code byte."""
    return f"{code >> 5}.{code & 0x1F:02d}"


class Option(IntEnum):
    IF_MATCH = 1
    URI_HOST = 3
    ETAG = 4
    IF_NONE_MATCH = 5
    OBSERVE = 6
    URI_PORT = 7
    LOCATION_PATH = 8
    URI_PATH = 11
    CONTENT_FORMAT = 12
    MAX_AGE = 14
    URI_QUERY = 15
    ACCEPT = 17
    LOCATION_QUERY = 20
    BLOCK2 = 23
    BLOCK1 = 27
    SIZE2 = 28
    PROXY_URI = 35
    PROXY_SCHEME = 39
    SIZE1 = 60
    NO_RESPONSE = 258  # RFC 7967; Device OS puts it on its goodbye message


KNOWN_OPTIONS = frozenset(int(o) for o in Option)


def is_critical(number: int) -> bool:
    """RFC 7252 §5.4.1: odd option numbers are critical."""
    return bool(number & 1)


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    code: int
    message_id: int
    token: bytes = b""
    options: tuple[tuple[int, bytes], ...] = ()
    payload: bytes = b""

    # -- codec ---------------------------------------------------------------------------------

    def encode(self) -> bytes:
        if len(self.token) > MAX_TOKEN_LENGTH:
            raise ValueError(f"token of {len(self.token)} bytes is longer than 8")
        if not 0 <= self.message_id < MESSAGE_ID_MODULUS:
            raise ValueError(f"message id {self.message_id} does not fit 16 bits")
        out = bytearray(
            (
                VERSION << 6 | int(self.type) << 4 | len(self.token),
                self.code,
                self.message_id >> 8,
                self.message_id & 0xFF,
            )
        )
        out += self.token
        previous = 0
        # sorted() is stable, so repeated options (Uri-Path segments) keep their order.
        for number, value in sorted(self.options, key=lambda option: option[0]):
            delta_nibble, delta_ext = _extended(number - previous)
            length_nibble, length_ext = _extended(len(value))
            out.append(delta_nibble << 4 | length_nibble)
            out += delta_ext + length_ext + value
            previous = number
        if self.payload:
            out.append(PAYLOAD_MARKER)
            out += self.payload
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Parse one CoAP message; raises ``ProtocolViolation`` naming what is wrong."""
        if len(data) < 4:
            raise ProtocolViolation(f"CoAP message of {len(data)} bytes is shorter than a header")
        first = data[0]
        if first >> 6 != VERSION:
            raise ProtocolViolation(f"CoAP version {first >> 6}, expected 1")
        token_length = first & 0x0F
        if token_length > MAX_TOKEN_LENGTH:
            raise ProtocolViolation(f"CoAP token length {token_length} is over 8")
        message_type = MessageType((first >> 4) & 0x03)
        code = data[1]
        message_id = data[2] << 8 | data[3]
        position = 4 + token_length
        if position > len(data):
            raise ProtocolViolation("CoAP token runs past the end of the message")
        token = bytes(data[4:position])
        if code == Code.EMPTY and len(data) != 4:
            raise ProtocolViolation("empty CoAP message (code 0.00) carries token, options or data")
        options: list[tuple[int, bytes]] = []
        number = 0
        payload = b""
        while position < len(data):
            byte = data[position]
            position += 1
            if byte == PAYLOAD_MARKER:
                payload = bytes(data[position:])
                if not payload:
                    raise ProtocolViolation("CoAP payload marker followed by no payload")
                break
            delta, position = _read_extended(data, byte >> 4, position, "delta")
            length, position = _read_extended(data, byte & 0x0F, position, "length")
            number += delta
            if position + length > len(data):
                raise ProtocolViolation(f"CoAP option {number} runs past the end of the message")
            options.append((number, bytes(data[position : position + length])))
            position += length
        return cls(message_type, code, message_id, token, tuple(options), payload)

    # -- views ---------------------------------------------------------------------------------

    def option_values(self, number: int) -> list[bytes]:
        return [value for n, value in self.options if n == number]

    @property
    def uri_path(self) -> list[str]:
        """Uri-Path segments as text; raises ``ProtocolViolation`` for non-UTF-8 bytes."""
        return [_text(v, "Uri-Path") for v in self.option_values(Option.URI_PATH)]

    @property
    def uri_query(self) -> list[bytes]:
        return self.option_values(Option.URI_QUERY)

    @property
    def max_age(self) -> int | None:
        values = self.option_values(Option.MAX_AGE)
        if not values:
            return None
        if len(values[-1]) > 4:
            raise ProtocolViolation("CoAP Max-Age option is longer than 4 bytes")
        return int.from_bytes(values[-1], "big")

    def unknown_critical_options(self) -> list[int]:
        return sorted({n for n, _ in self.options if is_critical(n) and n not in KNOWN_OPTIONS})

    @property
    def is_request(self) -> bool:
        return 1 <= self.code <= 31

    @property
    def is_empty(self) -> bool:
        return self.code == Code.EMPTY

    @property
    def is_ping(self) -> bool:
        return self.type is MessageType.CON and self.code == Code.EMPTY

    def describe(self) -> str:
        """A short label for logs and errors; never includes the payload."""
        path = "/".join(v.decode("utf-8", "replace") for v in self.option_values(Option.URI_PATH))
        return f"{self.type.name} {code_text(self.code)} /{path} id={self.message_id}"


def _extended(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes((value - 13,))
    if value < 65805:
        return 14, (value - 269).to_bytes(2, "big")
    raise ValueError(f"CoAP option delta or length {value} is too large")


def _read_extended(data: bytes, nibble: int, position: int, what: str) -> tuple[int, int]:
    if nibble < 13:
        return nibble, position
    if nibble == 13:
        if position + 1 > len(data):
            raise ProtocolViolation(f"CoAP option {what} extension runs past the end")
        return data[position] + 13, position + 1
    if nibble == 14:
        if position + 2 > len(data):
            raise ProtocolViolation(f"CoAP option {what} extension runs past the end")
        return (data[position] << 8 | data[position + 1]) + 269, position + 2
    raise ProtocolViolation(f"CoAP option {what} nibble 15 is reserved")


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(f"CoAP {what} is not UTF-8") from None


# ---------------------------------------------------------------------------------------------
# Message-id counters


def next_message_id(counter: int) -> int:
    """The id after ``counter``: Particle's ``++counter`` on a 16-bit value."""
    return (counter + 1) % MESSAGE_ID_MODULUS


# ---------------------------------------------------------------------------------------------
# Hello


class HelloFlag(IntFlag):
    OTA_UPGRADE_SUCCESSFUL = 0x01
    DIAGNOSTICS = 0x02
    IMMEDIATE_UPDATES = 0x04
    HANDSHAKE_COMPLETE = 0x08
    GOODBYE = 0x10
    DEVICE_INITIATED_DESCRIBE = 0x20
    COMPRESSED_OTA = 0x40


SHORT_HELLO_SIZE = 8
LONG_HELLO_SIZE = 20


@dataclass(frozen=True, slots=True)
class Hello:
    """A device's Hello payload, in either form the reference describes.

    Short form (8 bytes, Device OS before 5.x; reference §1.4)::

        product_id(2) product_version(2) reserved(1)=0 flags(1) platform_id(2)
        [device_id_length(2) device_id]          (UDP only)

    Long form (20 bytes, Device OS 5.x; reference §5, observed on the wire)::

        product_id(2) product_version(2) flags(1) reserved(1) platform_id(2)
        device_id_length(2)=0 on TCP  system_version(2) max_message_size(2)
        max_binary_size(4) ota_chunk_size(2)

    The flags byte sits at offset 5 in the short form and 4 in the long form, as the reference
    records them (the long form from a wire capture, not from source). ``encode`` follows that;
    ``decode`` ORs bytes 4 and 5, since the other one is zero in both forms, so a capture that
    mislabelled the two bytes would still parse right. Integers are big-endian.
    """

    product_id: int = 0
    product_version: int = 0
    flags: int = 0
    platform_id: int = 0
    device_id: bytes = b""
    system_version: int | None = None
    max_message_size: int | None = None
    max_binary_size: int | None = None
    ota_chunk_size: int | None = None

    @property
    def is_long(self) -> bool:
        return self.system_version is not None

    def encode(self) -> bytes:
        if self.is_long:
            return (
                self.product_id.to_bytes(2, "big")
                + self.product_version.to_bytes(2, "big")
                + bytes((self.flags & 0xFF, 0))
                + self.platform_id.to_bytes(2, "big")
                + len(self.device_id).to_bytes(2, "big")
                + self.device_id
                + (self.system_version or 0).to_bytes(2, "big")
                + (self.max_message_size or 0).to_bytes(2, "big")
                + (self.max_binary_size or 0).to_bytes(4, "big")
                + (self.ota_chunk_size or 0).to_bytes(2, "big")
            )
        out = (
            self.product_id.to_bytes(2, "big")
            + self.product_version.to_bytes(2, "big")
            + bytes((0, self.flags & 0xFF))
            + self.platform_id.to_bytes(2, "big")
        )
        if self.device_id:
            out += len(self.device_id).to_bytes(2, "big") + self.device_id
        return out

    @classmethod
    def decode(cls, payload: bytes) -> Hello:
        """Parse a Hello payload; raises ``ProtocolViolation`` for any other length or shape."""
        if len(payload) < SHORT_HELLO_SIZE:
            raise ProtocolViolation(
                f"Hello payload of {len(payload)} bytes is shorter than {SHORT_HELLO_SIZE}"
            )
        product_id = int.from_bytes(payload[0:2], "big")
        product_version = int.from_bytes(payload[2:4], "big")
        platform_id = int.from_bytes(payload[6:8], "big")
        flags = payload[4] | payload[5]
        if len(payload) == SHORT_HELLO_SIZE:
            return cls(product_id, product_version, flags, platform_id)
        if len(payload) < 10:
            raise ProtocolViolation(f"Hello payload of {len(payload)} bytes is cut short")
        id_length = int.from_bytes(payload[8:10], "big")
        id_end = 10 + id_length
        if id_end > len(payload):
            raise ProtocolViolation(f"Hello device id length {id_length} runs past the payload")
        device_id = bytes(payload[10:id_end])
        rest = payload[id_end:]
        if not rest:
            return cls(product_id, product_version, flags, platform_id, device_id)
        if len(rest) != 10:
            raise ProtocolViolation(
                f"Hello payload has {len(rest)} bytes after the device id, expected 0 or 10"
            )
        return cls(
            product_id,
            product_version,
            flags,
            platform_id,
            device_id,
            system_version=int.from_bytes(rest[0:2], "big"),
            max_message_size=int.from_bytes(rest[2:4], "big"),
            max_binary_size=int.from_bytes(rest[4:8], "big"),
            ota_chunk_size=int.from_bytes(rest[8:10], "big"),
        )


def hello(message_id: int, payload: bytes = b"", *, confirmable: bool = False) -> Message:
    """A Hello (POST /h). TCP devices and servers send it NON; an empty payload is a server's."""
    message_type = MessageType.CON if confirmable else MessageType.NON
    return Message(message_type, Code.POST, message_id, options=_path("h"), payload=payload)


def is_hello(message: Message) -> bool:
    return message.code == Code.POST and _first_path(message) == b"h"


# ---------------------------------------------------------------------------------------------
# Ping, acknowledgements, time


def ping(message_id: int) -> Message:
    return Message(MessageType.CON, Code.EMPTY, message_id)


def empty_ack(message_id: int) -> Message:
    return Message(MessageType.ACK, Code.EMPTY, message_id)


def reset(message_id: int) -> Message:
    return Message(MessageType.RST, Code.EMPTY, message_id)


def time_request(message_id: int, token: bytes = b"\x00") -> Message:
    return Message(MessageType.CON, Code.GET, message_id, token, _path("t"))


def is_time_request(message: Message) -> bool:
    return message.code == Code.GET and _first_path(message) == b"t"


def time_response(request: Message, unix_time: int) -> Message:
    """The piggy-backed 2.05 ACK carrying a 4-byte big-endian Unix time."""
    return Message(
        MessageType.ACK,
        Code.CONTENT,
        request.message_id,
        request.token,
        payload=(unix_time & 0xFFFFFFFF).to_bytes(4, "big"),
    )


def parse_time_response(message: Message) -> int:
    if message.code != Code.CONTENT or len(message.payload) != 4:
        raise ProtocolViolation("time response is not a 2.05 with a 4-byte payload")
    return int.from_bytes(message.payload, "big")


# ---------------------------------------------------------------------------------------------
# Events and subscriptions


def event(
    message_id: int,
    name: str,
    data: bytes = b"",
    *,
    private: bool = False,
    ttl: int = DEFAULT_EVENT_TTL,
    confirmable: bool = False,
) -> Message:
    """An event (POST /e/<name> public, /E/<name> private), as Device OS builds it.

    The name becomes further Uri-Path segments split at ``/``; Max-Age is sent only when the
    TTL is not the default 60 s.
    """
    if not 0 <= ttl <= MAX_EVENT_TTL:
        raise ValueError(f"event ttl {ttl} does not fit 3 bytes")
    options = [(int(Option.URI_PATH), b"E" if private else b"e")]
    options += [(int(Option.URI_PATH), s.encode()) for s in name.split("/") if s]
    if ttl != DEFAULT_EVENT_TTL:
        options.append((int(Option.MAX_AGE), ttl.to_bytes(3, "big")))
    message_type = MessageType.CON if confirmable else MessageType.NON
    return Message(message_type, Code.POST, message_id, options=tuple(options), payload=data)


@dataclass(frozen=True)
class EventInfo:
    name: str
    data: bytes
    private: bool
    ttl: int


def parse_event(message: Message) -> EventInfo | None:
    """The event a POST /e or /E message carries, or ``None`` when it is not an event."""
    if message.code != Code.POST or _first_path(message) not in (b"e", b"E"):
        return None
    segments = message.uri_path
    ttl = message.max_age
    return EventInfo(
        name="/".join(segments[1:]),
        data=message.payload,
        private=segments[0] == "E",
        ttl=DEFAULT_EVENT_TTL if ttl is None else ttl,
    )


def subscribe(message_id: int, prefix: str, *, my_devices: bool = True) -> Message:
    """GET /e/<prefix>[?u]: ``u`` limits the subscription to the owner's devices."""
    options = [(int(Option.URI_PATH), b"e")]
    options += [(int(Option.URI_PATH), s.encode()) for s in prefix.split("/") if s]
    if my_devices:
        options.append((int(Option.URI_QUERY), b"u"))
    return Message(MessageType.CON, Code.GET, message_id, options=tuple(options))


@dataclass(frozen=True)
class SubscriptionInfo:
    prefix: str
    my_devices: bool
    query: tuple[bytes, ...]


def parse_subscription(message: Message) -> SubscriptionInfo | None:
    if message.code != Code.GET or _first_path(message) != b"e":
        return None
    query = tuple(message.uri_query)
    return SubscriptionInfo("/".join(message.uri_path[1:]), b"u" in query, query)


# ---------------------------------------------------------------------------------------------
# Describe


class DescribeFlag(IntFlag):
    SYSTEM = 0x01
    APPLICATION = 0x02
    METRICS = 0x04


def describe_post(message_id: int, flags: int, payload: bytes) -> Message:
    """Device-initiated Describe: CON POST /d?<flags byte> with the JSON payload."""
    return Message(
        MessageType.CON,
        Code.POST,
        message_id,
        options=((int(Option.URI_PATH), b"d"), (int(Option.URI_QUERY), bytes((flags,)))),
        payload=payload,
    )


def describe_request(message_id: int, flags: int | None = None, token: bytes = b"") -> Message:
    """Server asking for a Describe: CON GET /d[?<flags byte>]."""
    options = [(int(Option.URI_PATH), b"d")]
    if flags is not None:
        options.append((int(Option.URI_QUERY), bytes((flags,))))
    return Message(MessageType.CON, Code.GET, message_id, token, tuple(options))


@dataclass(frozen=True)
class DescribeInfo:
    flags: int
    payload: bytes


def parse_describe(message: Message) -> DescribeInfo | None:
    """A device's POST /d; the flags come from the 1-byte query (default: system + app)."""
    if message.code != Code.POST or _first_path(message) != b"d":
        return None
    flags = int(DescribeFlag.SYSTEM | DescribeFlag.APPLICATION)
    for value in message.uri_query:
        if len(value) != 1:
            raise ProtocolViolation(f"Describe query is {len(value)} bytes, expected 1")
        flags = value[0]
    return DescribeInfo(flags, message.payload)


# ---------------------------------------------------------------------------------------------
# Other catalogue entries (reference §1.4): built here so both ends use one definition.


def key_change(message_id: int, payload: bytes = b"") -> Message:
    return Message(MessageType.CON, Code.PUT, message_id, options=_path("k"), payload=payload)


def function_call(message_id: int, name: str, argument: bytes, token: bytes) -> Message:
    return Message(
        MessageType.CON,
        Code.POST,
        message_id,
        token,
        ((int(Option.URI_PATH), b"f"), (int(Option.URI_PATH), name.encode())),
        argument,
    )


def variable_request(message_id: int, name: str, token: bytes) -> Message:
    return Message(
        MessageType.CON,
        Code.GET,
        message_id,
        token,
        ((int(Option.URI_PATH), b"v"), (int(Option.URI_PATH), name.encode())),
    )


def signal_start(message_id: int, on: bool = True) -> Message:
    return Message(
        MessageType.CON, Code.PUT, message_id, options=_path("s"), payload=bytes((int(on),))
    )


def _path(*segments: str) -> tuple[tuple[int, bytes], ...]:
    return tuple((int(Option.URI_PATH), s.encode()) for s in segments)


def _first_path(message: Message) -> bytes | None:
    for number, value in message.options:
        if number == Option.URI_PATH:
            return value
    return None
