"""A stand-in for dfu-util: records its arguments and reads/writes a DCT image file.

FAKE_DFU_IMAGE names the image (alt 1 addresses are offsets into it), FAKE_DFU_LOG the file
that gets one JSON line of arguments per run, FAKE_DFU_SERIAL the device id it reports, and
FAKE_DFU_PID its USB product id (default d006, a Photon). FAKE_DFU_FAIL=write makes writes fail.
"""

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_DFU_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    if argv == ["-l"]:
        serial = os.environ.get("FAKE_DFU_SERIAL", "")
        pid = os.environ.get("FAKE_DFU_PID", "d006")
        for alt, name in ((0, "@Internal Flash  /0x08000000/03*016Ka"), (1, "@DCT Flash")):
            print(
                f'Found DFU: [2b04:{pid}] ver=0250, devnum=7, cfg=1, intf=0, path="1-1", '
                f'alt={alt}, name="{name}", serial="{serial.upper()}"'
            )
        return 0
    opts = dict(zip(argv[::2], argv[1::2], strict=False))
    if "-e" in argv:
        return 0
    if opts.get("-a") != "1":
        print("dfu-util: only alt 1 is simulated", file=sys.stderr)
        return 74
    image = Path(os.environ["FAKE_DFU_IMAGE"])
    data = bytearray(image.read_bytes())
    address = opts["-s"]
    if "-U" in opts:
        offset, size = (int(x) for x in address.split(":"))
        Path(opts["-U"]).write_bytes(bytes(data[offset : offset + size]))
        return 0
    if "-D" in opts:
        if os.environ.get("FAKE_DFU_FAIL") == "write":
            print("dfu-util: Error during download", file=sys.stderr)
            return 74
        offset = int(address.split(":")[0])
        payload = Path(opts["-D"]).read_bytes()
        data[offset : offset + len(payload)] = payload
        image.write_bytes(bytes(data))
        return 0
    print(f"dfu-util: unexpected arguments {argv}", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
