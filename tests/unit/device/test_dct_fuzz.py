"""Random, truncated and garbage DCT images, fields and address blocks never give a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fermion.device.boot import analyse
from fermion.device.dct import (
    PRIVATE_KEY_SLOT,
    PUBLIC_KEY_SLOT,
    SERVER_ADDRESS_SLOT,
    SERVER_KEY_SLOT,
    DctImage,
    decode_private_key_slot,
    decode_public_key_slot,
    read_claim_code,
    read_device_id,
    read_server_address,
)
from fermion.device.keyhelper import decode_record
from fermion.device.link import DctFileLink
from fermion.errors import FermionError
from fermion.keys import Algorithm, generate_device_key, private_key_der
from fermion.keys.serverfile import ServerAddress, Transport, decode_address_block

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
REAL_RSA = private_key_der(generate_device_key(Algorithm.RSA))
REAL_EC = private_key_der(generate_device_key(Algorithm.EC))

REGIONS = [
    *PRIVATE_KEY_SLOT.values(),
    *PUBLIC_KEY_SLOT.values(),
    *SERVER_KEY_SLOT.values(),
    *SERVER_ADDRESS_SLOT.values(),
]


@st.composite
def images(draw: st.DrawFn) -> bytes:
    """A valid-size image: a fill byte, then garbage or truncated real keys over key slots."""
    size = draw(st.sampled_from([8391, 16384]))
    raw = bytearray([draw(st.sampled_from([0xFF, 0x00, 0x30]))]) * size
    for _ in range(draw(st.integers(0, 6))):
        region = draw(st.sampled_from(REGIONS))
        source = draw(
            st.one_of(
                st.binary(min_size=1, max_size=region.size),
                st.sampled_from([REAL_RSA, REAL_EC]).flatmap(
                    lambda der: st.integers(0, len(der)).map(lambda n: der[:n])
                ),
            )
        )
        data = source[: region.size]
        raw[region.offset : region.offset + len(data)] = data
    raw[2977] = draw(st.integers(0, 255))
    return bytes(raw)


@SETTINGS
@given(st.binary(max_size=20000))
def test_any_bytes_as_a_dct_image(data: bytes) -> None:
    try:
        DctImage(data, source="fuzz.bin")
    except FermionError as exc:
        assert "fuzz.bin" in str(exc) and f"{len(data)} bytes" in str(exc)


@SETTINGS
@given(data=images())
def test_analyse_random_images(data: bytes, fermion_home: Path) -> None:
    image = DctImage(data, source="fuzz.bin")
    for transport in Transport:
        report = analyse(image, transport, fermion_home, "fuzz.bin")
        assert report.private_key.state in {"ok", "erased", "corrupt"}
        assert report.public_key.state in {"ok", "erased", "corrupt", "stale"}
        assert report.server_key.state in {"ok", "erased", "corrupt"}
        assert report.server_address_effective.host
    read_claim_code(image)
    read_device_id(image)


@SETTINGS
@given(images(), st.sampled_from([None, "photon", "electron", "argon"]))
def test_dct_file_link_on_random_files(data: bytes, platform: str | None) -> None:
    from fermion.device.platforms import Platform

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dump.bin"
        path.write_bytes(data)
        link = DctFileLink(path, Platform(platform) if platform else None)
        try:
            transport = link.transport()
        except FermionError as exc:
            assert "--platform" in str(exc)
            return
        read_server_address(link, transport)


@SETTINGS
@given(st.binary(max_size=700))
def test_private_slot_garbage(data: bytes) -> None:
    try:
        decode_private_key_slot(data, "slot")
    except FermionError as exc:
        assert str(exc).startswith("slot")


@SETTINGS
@given(st.sampled_from([REAL_RSA, REAL_EC]), st.data())
def test_truncated_private_keys(der: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(der) - 1))
    pad = data.draw(st.sampled_from([b"", b"\xff" * 20, b"\x00" * 20]))
    try:
        decode_private_key_slot(der[:cut] + pad, "slot")
    except FermionError as exc:
        assert str(exc).startswith("slot")


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from(list(Transport)))
def test_public_slot_garbage(data: bytes, transport: Transport) -> None:
    try:
        decode_public_key_slot(data, transport, "slot")
    except FermionError as exc:
        assert str(exc).startswith("slot")


@SETTINGS
@given(st.binary(max_size=200))
def test_address_block_garbage(data: bytes) -> None:
    try:
        result = decode_address_block(data, "address")
    except FermionError as exc:
        assert str(exc).startswith("address")
        return
    assert result is None or isinstance(result, ServerAddress)


@SETTINGS
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=126))
def test_address_block_structured(kind: int, length: int, rest: bytes) -> None:
    block = (bytes([kind, length]) + rest).ljust(128, b"\xff")
    result = decode_address_block(block, "address")
    if result is not None:
        assert kind in (0, 1)
        assert result.port is None or 1 <= result.port <= 0xFFFE


@SETTINGS
@given(st.binary(max_size=400), st.integers(0, 320))
def test_keyhelper_record_garbage(data: bytes, size: int) -> None:
    keys = decode_record(data, size)
    assert keys is None or len(keys) == size


@settings(max_examples=25, deadline=None)
@given(
    data=images(),
    command=st.sampled_from(
        [["keys", "address"], ["keys", "save", "out", "--force"], ["keys", "protocol"]]
    ),
    platform=st.sampled_from([[], ["--platform", "electron"], ["--platform", "photon"]]),
)
def test_keys_commands_on_random_dumps_never_trace_back(
    data: bytes, command: list[str], platform: list[str]
) -> None:
    """The CLI on a garbage dump: success, or exit 1 with one ``error:`` line. Never a traceback."""
    import contextlib
    import io
    import os

    from fermion.cli.main import main

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dump.bin"
        path.write_bytes(data)
        err = io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    main([*command, "--dct", str(path), *platform])
                    code = 0
                except SystemExit as exc:
                    code = int(exc.code or 0)
        finally:
            os.chdir(cwd)
        assert code in (0, 1)
        if code:
            assert "error:" in err.getvalue()
