"""Emulate a contactless card with nfcpy, for an nfcpy reader to read.

With nfcpy's UDP device both sides are plain processes on one machine: this script listens
as a FeliCa / NFC Forum Type 3 tag with a given IDm (nfcpy ships Type 3 tag emulation; its
UDP driver supports ``listen_ttf``), and a reader opened on the same ``udp:host:port``
discovers it. A person can run it next to ``kiosk`` in simulate mode to "tap" a card:

    python -m simulators.nfcpy_tag --device udp:127.0.0.1:54321 --idm 03FE000000C0FFEE

Stop it (Ctrl-C or SIGTERM) to take the card away. The reader reports the IDm as the UID.
On a real PN533-class USB reader the same script makes that reader act as the card.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_DEVICE = "udp:127.0.0.1:54321"
DEFAULT_IDM = "03FE000000C0FFEE"
DEFAULT_PMM = "FFFFFFFFFFFFFFFF"
"""IC code 0xFF: not a Sony product code, so readers treat it as a plain Type 3 tag."""
DEFAULT_SYSTEM_CODE = "12FC"
"""NFC Forum Type 3 tag system code."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", default=DEFAULT_DEVICE, help="nfcpy device path")
    parser.add_argument("--idm", default=DEFAULT_IDM, help="8-byte IDm in hex (the card UID)")
    parser.add_argument("--pmm", default=DEFAULT_PMM, help="8-byte PMm in hex")
    parser.add_argument("--sys", default=DEFAULT_SYSTEM_CODE, help="2-byte system code in hex")
    args = parser.parse_args(argv)
    for name, size in (("idm", 8), ("pmm", 8), ("sys", 2)):
        try:
            value = bytes.fromhex(getattr(args, name))
        except ValueError:
            parser.error(f"--{name} must be hex")
        if len(value) != size:
            parser.error(f"--{name} must be {size} bytes")
        if name == "idm" and value[:2] == b"\x01\xfe":
            parser.error("an IDm starting 01FE announces NFC-DEP (peer to peer), not a card")
        setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import nfc
    import nfc.clf

    def on_startup(target: Any) -> Any:
        target.brty = "212F"
        target.sensf_res = bytearray(b"\x01" + args.idm + args.pmm + args.sys)
        return target

    def on_connect(tag: Any) -> bool:
        print(f"activated by reader: {tag}", flush=True)
        return True  # keep answering commands (presence checks) until the reader leaves

    def on_release(tag: Any) -> bool:
        print("reader released the card", flush=True)
        return False  # listen again

    try:
        clf = nfc.ContactlessFrontend(args.device)
    except OSError as exc:
        print(f"cannot open {args.device}: {exc}", file=sys.stderr)
        return 1
    print(f"card {args.idm.hex().upper()} listening on {args.device}", flush=True)
    try:
        clf.connect(card={"on-startup": on_startup, "on-connect": on_connect,
                          "on-release": on_release})
    finally:
        clf.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
