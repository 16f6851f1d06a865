"""Emulate a contactless card with nfcpy, for an nfcpy reader to read.

With nfcpy's UDP device both sides are plain processes on one machine: this script listens
as a card and a reader opened on the same ``udp:host:port`` discovers it. Two kinds:

* FeliCa / NFC Forum Type 3 (``--idm``): nfcpy's own Type 3 emulation (``listen_ttf``);
* ISO/IEC 14443-A (``--uid``), what most building badges are (MIFARE Classic, NTAG):
  nfcpy's UDP driver answers REQA, anticollision and SELECT itself (``listen_tta``) with
  the given UID, ATQA and SAK; this script then answers what a reader sends next — READ
  (16 bytes of the card's memory), REQA/WUPA and re-selection for presence checks, and
  silence (as a real card keeps) for commands it does not support.

    python -m simulators.nfcpy_tag --device udp:127.0.0.1:54321 --idm 03FE000000C0FFEE
    python -m simulators.nfcpy_tag --device udp:127.0.0.1:54321 --uid 5A3C9E01

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
DEFAULT_SAK = "08"
"""MIFARE Classic 1K: the commonest access badge."""
READ = 0x30
REQA, WUPA = 0x26, 0x52
SEL_CL = (0x93, 0x95, 0x97)


def default_atqa(uid: bytes) -> bytes:
    """ATQA on air (LSB first): 0x0004 for a 4-byte UID, 0x0044 for a 7-byte one."""
    return b"\x04\x00" if len(uid) == 4 else b"\x44\x00"


def cascade(uid: bytes) -> list[bytes]:
    """The UID as the anticollision answers of each cascade level (CT 0x88, BCC)."""
    parts = [uid] if len(uid) == 4 else [b"\x88" + uid[:3], uid[3:]]
    if len(uid) == 10:
        parts = [b"\x88" + uid[:3], b"\x88" + uid[3:6], uid[6:]]
    out = []
    for part in parts:
        bcc = part[0] ^ part[1] ^ part[2] ^ part[3]
        out.append(part + bytes((bcc,)))
    return out


class TypeACard:
    """What an ISO 14443-A card answers once selected (pure: bytes in, bytes or None out)."""

    def __init__(self, uid: bytes, *, atqa: bytes, sak: int) -> None:
        self.uid, self.atqa, self.sak = uid, atqa, sak
        self.levels = cascade(uid)
        # Block 0 carries the UID (manufacturer block); the rest reads as zeros.
        self.memory = bytearray(64)
        self.memory[: len(uid)] = uid

    def answer(self, command: bytes) -> bytes | None:
        if not command:
            return None
        if command[0] in (REQA, WUPA) and len(command) == 1:
            return self.atqa
        if command[0] in SEL_CL and len(command) == 2 and command[1] == 0x20:
            level = SEL_CL.index(command[0])
            return self.levels[level] if level < len(self.levels) else None
        if command[0] in SEL_CL and len(command) == 7 and command[1] == 0x70:
            level = SEL_CL.index(command[0])
            if level < len(self.levels) and command[2:7] == self.levels[level]:
                more = level + 1 < len(self.levels)
                return bytes(((self.sak & 0xFB) | (0x04 if more else 0),))
            return None
        if command[0] == READ and len(command) == 2:
            block = command[1] % (len(self.memory) // 4)
            data = (self.memory * 2)[block * 4 : block * 4 + 16]
            return bytes(data)
        return None  # HLTA, GET_VERSION, AUTH...: a real card stays silent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", default=DEFAULT_DEVICE, help="nfcpy device path")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--idm", default=None, help="FeliCa: 8-byte IDm in hex (the card UID)")
    kind.add_argument("--uid", default=None,
                      help="ISO 14443-A: 4, 7 or 10-byte UID in hex (a MIFARE/NTAG badge)")
    parser.add_argument("--pmm", default=DEFAULT_PMM, help="FeliCa: 8-byte PMm in hex")
    parser.add_argument("--sys", default=DEFAULT_SYSTEM_CODE, help="FeliCa: system code in hex")
    parser.add_argument("--atqa", default=None, help="14443-A: ATQA as sent (LSB first), hex")
    parser.add_argument("--sak", default=DEFAULT_SAK, help="14443-A: SAK in hex (08 Classic)")
    args = parser.parse_args(argv)
    if args.idm is None and args.uid is None:
        args.idm = DEFAULT_IDM
    sizes: dict[str, tuple[int, ...]] = {"pmm": (8,), "sys": (2,), "sak": (1,)}
    if args.idm is not None:
        sizes["idm"] = (8,)
    if args.uid is not None:
        sizes["uid"] = (4, 7, 10)
    if args.atqa is not None:
        sizes["atqa"] = (2,)
    for name, allowed in sizes.items():
        try:
            value = bytes.fromhex(getattr(args, name))
        except ValueError:
            parser.error(f"--{name} must be hex")
        if len(value) not in allowed:
            parser.error(f"--{name} must be {' or '.join(map(str, allowed))} bytes")
        if name == "idm" and value[:2] == b"\x01\xfe":
            parser.error("an IDm starting 01FE announces NFC-DEP (peer to peer), not a card")
        if name == "uid" and len(value) == 4 and value[0] == 0x88:
            parser.error("a 4-byte UID cannot start with 88 (the cascade tag)")
        setattr(args, name, value)
    if args.uid is not None and args.atqa is None:
        args.atqa = default_atqa(args.uid)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import nfc
    import nfc.clf

    try:
        clf = nfc.ContactlessFrontend(args.device)
    except OSError as exc:
        print(f"cannot open {args.device}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.uid is not None:
            return _serve_type_a(clf, args)
        return _serve_felica(clf, args)
    finally:
        clf.close()


def _serve_felica(clf: Any, args: argparse.Namespace) -> int:
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

    print(f"card {args.idm.hex().upper()} listening on {args.device}", flush=True)
    clf.connect(card={"on-startup": on_startup, "on-connect": on_connect,
                      "on-release": on_release})
    return 0


def _serve_type_a(clf: Any, args: argparse.Namespace) -> int:
    import nfc.clf

    card = TypeACard(args.uid, atqa=args.atqa, sak=args.sak[0])

    def on_startup(target: Any) -> Any:
        target.brty = "106A"
        target.sens_res = bytearray(card.atqa)
        target.sdd_res = bytearray(card.uid)
        target.sel_res = bytearray((card.sak,))
        return target

    def on_discover(target: Any) -> bool:
        """Selected by a reader: answer its commands until it goes away."""
        print(f"selected by reader: {target}", flush=True)
        command = bytes(target.tt2_cmd or b"")
        while True:
            try:
                command = bytes(clf.exchange(card.answer(command), timeout=1.0) or b"")
            except nfc.clf.CommunicationError:
                print("reader released the card", flush=True)
                return False  # nfcpy has no Type A emulation object: listen again

    print(f"card {args.uid.hex().upper()} (14443-A) listening on {args.device}", flush=True)
    while True:
        clf.connect(card={"on-startup": on_startup, "on-discover": on_discover,
                          "on-connect": lambda _tag: True})


if __name__ == "__main__":
    sys.exit(main())
