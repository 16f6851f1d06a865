"""The Kerong board simulator: exact answers, model wiring, faults, TCP/pty serving, CLI."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.errors import CodecError, LockBoardError
from drivers.locks.kerong import KerongLockBank
from drivers.locks.kerong.codec import FrameParser, decode_frame
from simulators.cabinet import CabinetModel
from simulators.cli import sim as sim_group
from simulators.kerong_board import GARBAGE, LOG_LENGTH, KerongBoardServer, KerongBoardSim

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def model_for(clock: Clock, boards: int = 2, fobs: dict[int, str] | None = None) -> CabinetModel:
    model = CabinetModel(range(1, 16 * boards + 1), clock=clock)
    model.load(fobs or {})
    return model


def ask(board_sim: KerongBoardSim, hexframe: str) -> list[str]:
    """Send one frame (as hex) and return the replies as upper-case hex strings."""
    replies = board_sim.respond(decode_frame(bytes.fromhex(hexframe)))
    return [r.hex(" ").upper() for r in replies]


# -- byte-exact answers and the model -------------------------------------------------------
@pytest.mark.parametrize(("fobs", "polarity", "sent", "reply"), [
    ({}, True, "02 00 30 03 35", "02 00 35 FF FF 00 00 03 38"),  # reference reply
    ({1: "A", 16: "B"}, True, "02 00 30 03 35", "02 00 35 FF FF 01 80 03 B9"),
    ({17: "C"}, True, "02 10 30 03 45", "02 10 35 FF FF 01 00 03 49"),
    ({}, False, "02 00 30 03 35", "02 00 35 00 00 00 00 03 3A"),
    ({}, True, "02 00 31 03 36", "02 00 35 FE FF 00 00 03 37"),  # unlock b0 lock1, answered
    ({}, True, "02 10 31 03 46", "02 10 35 FE FF 00 00 03 47"),  # unlock b1 lock1
    ({}, False, "02 0F 31 03 45", "02 00 35 00 80 00 00 03 BA"),  # lock16, set = unlocked
])
def test_answers_byte_exact(
    clock: Clock, fobs: dict[int, str], polarity: bool, sent: str, reply: str
) -> None:
    board_sim = KerongBoardSim(model_for(clock, fobs=fobs), boards=2,
                               bit_set_means_locked=polarity)
    assert ask(board_sim, sent) == [reply]


def test_unlock_drives_the_model_for_the_board_unlock_time(clock: Clock) -> None:
    model = model_for(clock)
    board_sim = KerongBoardSim(model, boards=2, unlock_time_ms=700)
    ask(board_sim, "02 10 31 03 46")
    assert [s for s in model.slots if model.is_unlocked(s)] == [17]
    assert model.slots[17].unlocked_until == pytest.approx(clock.now + 0.7)
    clock.now += 0.71
    assert not model.is_unlocked(17)


def test_set_unlock_time_applies_to_the_next_unlock(clock: Clock) -> None:
    model = model_for(clock)
    board_sim = KerongBoardSim(model, boards=2)
    assert ask(board_sim, "02 10 37 00 C8 03 14") == []  # 2000 ms on board 1, unanswered
    assert board_sim.unlock_time_ms(1) == 2000
    assert board_sim.unlock_time_ms(0) == 500
    ask(board_sim, "02 10 31 03 46")
    assert model.slots[17].unlocked_until == pytest.approx(clock.now + 2.0)


def test_unlock_all_opens_every_slot_of_one_board(clock: Clock) -> None:
    model = model_for(clock, boards=3)
    assert ask(KerongBoardSim(model, boards=3), "02 10 33 03 48") == [
        "02 10 35 00 00 00 00 03 4A"
    ]
    assert [s for s in model.slots if model.is_unlocked(s)] == list(range(17, 33))


def test_status_all_answers_once_per_live_board(clock: Clock) -> None:
    board_sim = KerongBoardSim(model_for(clock, boards=3), boards=3)
    assert ask(board_sim, "02 00 32 03 37") == [
        "02 00 35 FF FF 00 00 03 38", "02 10 35 FF FF 00 00 03 48", "02 20 35 FF FF 00 00 03 58",
    ]
    board_sim.set_faults(offline_boards={1})
    assert [r[:5] for r in ask(board_sim, "02 00 32 03 37")] == ["02 00", "02 20"]


def test_silent_unlock_obeys_without_answering(clock: Clock) -> None:
    model = model_for(clock)
    assert ask(KerongBoardSim(model, answers_unlock=False), "02 00 31 03 36") == []
    assert model.is_unlocked(1)


def test_custom_slot_map_and_unwired_channels(clock: Clock) -> None:
    model = model_for(clock, fobs={5: "K5"})
    board_sim = KerongBoardSim(model, slot_map={(0, 1): 5, (0, 2): 99})
    assert ask(board_sim, "02 00 30 03 35") == ["02 00 35 FF FF 01 00 03 39"]
    ask(board_sim, "02 00 31 03 36")
    ask(board_sim, "02 01 31 03 37")  # channel 2 is mapped to a slot the model lacks
    assert [s for s in model.slots if model.is_unlocked(s)] == [5]
    with pytest.raises(ValueError, match="board 0 channel 3 drives no slot"):
        board_sim.jam(0, 3)


def test_bad_requests_are_ignored_like_a_real_board(clock: Clock) -> None:
    model = model_for(clock)
    board_sim = KerongBoardSim(model)
    parser = FrameParser()
    bad_sum = bytes.fromhex("02 00 31 03 37")
    assert board_sim.handle_bytes(parser, bad_sum) == []
    assert not model.is_unlocked(1)
    noisy = GARBAGE + bytes.fromhex("02 00 30 03 35")
    assert board_sim.handle_bytes(parser, noisy) == [bytes.fromhex("02 00 35 FF FF 00 00 03 38")]
    assert ask(board_sim, "02 50 30 03 85") == []  # no board 5 on this bus


def test_jammed_latch_reads_open_whatever_the_coil_does(clock: Clock) -> None:
    model = model_for(clock)
    board_sim = KerongBoardSim(model)
    board_sim.jam(0, 3)
    clock.now += 100
    assert ask(board_sim, "02 00 30 03 35") == ["02 00 35 FB FF 00 00 03 34"]
    board_sim.jam(0, 3, jammed=False)
    assert ask(board_sim, "02 00 30 03 35") == ["02 00 35 FF FF 00 00 03 38"]


# -- faults --------------------------------------------------------------------------------
def test_fault_no_reply_still_obeys(clock: Clock) -> None:
    model = model_for(clock)
    board_sim = KerongBoardSim(model)
    board_sim.set_faults(no_reply=True)
    assert ask(board_sim, "02 00 31 03 36") == []
    assert model.is_unlocked(1)


def test_fault_offline_board_neither_obeys_nor_answers(clock: Clock) -> None:
    model = model_for(clock)
    board_sim = KerongBoardSim(model, boards=2)
    board_sim.set_faults(offline_boards={1})
    assert ask(board_sim, "02 10 31 03 46") == []
    assert not model.is_unlocked(17)
    assert ask(board_sim, "02 00 31 03 36") != []  # board 0 unaffected


def test_fault_bad_checksum_corrupts_only_the_sum(clock: Clock) -> None:
    board_sim = KerongBoardSim(model_for(clock))
    board_sim.set_faults(bad_checksum=True)
    [reply] = board_sim.respond(decode_frame(bytes.fromhex("02 00 30 03 35")))
    assert reply[:-1] == bytes.fromhex("02 00 35 FF FF 00 00 03")
    with pytest.raises(CodecError, match="bad checksum"):
        decode_frame(reply)


def test_fault_garbage_before_and_instead(clock: Clock) -> None:
    board_sim = KerongBoardSim(model_for(clock))
    good = bytes.fromhex("02 00 35 FF FF 00 00 03 38")
    board_sim.set_faults(garbage_before=True)
    assert board_sim.respond(decode_frame(bytes.fromhex("02 00 30 03 35"))) == [GARBAGE + good]
    board_sim.set_faults(garbage_instead=True)
    assert board_sim.respond(decode_frame(bytes.fromhex("02 00 30 03 35"))) == [GARBAGE]
    board_sim.clear_faults()
    assert board_sim.respond(decode_frame(bytes.fromhex("02 00 30 03 35"))) == [good]


def test_power_cut_silences_every_board(clock: Clock) -> None:
    model = model_for(clock)
    board_sim = KerongBoardSim(model)
    model.power_cut()
    assert ask(board_sim, "02 00 30 03 35") == []


def test_invalid_bus_layouts_are_refused(clock: Clock) -> None:
    with pytest.raises(ValueError, match="boards"):
        KerongBoardSim(model_for(clock), boards=17)
    with pytest.raises(ValueError, match="channel 17"):
        KerongBoardSim(model_for(clock), slot_map={(0, 17): 1})


# -- serving over TCP and a pty --------------------------------------------------------------
@pytest.fixture
def tcp_server(clock: Clock) -> Iterator[KerongBoardServer]:
    board_sim = KerongBoardSim(model_for(clock, fobs={1: "F1"}), boards=2)
    with KerongBoardServer(board_sim) as server:
        yield server


def _recv(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_tcp_clients_get_exact_bytes(tcp_server: KerongBoardServer) -> None:
    host, port = tcp_server.url.removeprefix("socket://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as a, \
            socket.create_connection((host, int(port)), timeout=5) as b:
        a.sendall(bytes.fromhex("02 00 30 03 35"))
        assert _recv(a, 9) == bytes.fromhex("02 00 35 FF FF 01 00 03 39")
        # a frame split across two writes still counts; a second client shares the bus
        b.sendall(bytes.fromhex("02 00"))
        b.sendall(bytes.fromhex("31 03 36"))
        assert _recv(b, 9) == bytes.fromhex("02 00 35 FE FF 01 00 03 38")
    assert tcp_server.sim.model.is_unlocked(1)


def test_faults_switch_while_serving(tcp_server: KerongBoardServer) -> None:
    host, port = tcp_server.url.removeprefix("socket://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        tcp_server.sim.set_faults(no_reply=True)
        conn.sendall(bytes.fromhex("02 00 30 03 35 02 00 32 03 37"))
        deadline = time.monotonic() + 5
        while len(tcp_server.sim.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # wait until the boards heard both (and stayed silent)
        tcp_server.sim.clear_faults()
        conn.sendall(bytes.fromhex("02 10 30 03 45"))
        # only the answer to the request sent after clearing arrives
        assert _recv(conn, 9) == bytes.fromhex("02 10 35 FF FF 00 00 03 48")


def test_pty_serves_raw_bytes(clock: Clock) -> None:
    board_sim = KerongBoardSim(model_for(clock))
    with KerongBoardServer(board_sim, "pty") as server:
        fd = os.open(server.url, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, bytes.fromhex("02 00 31 03 36 02 00 30 03 35"))  # 0x03 is no ^C here
            data = b""
            while len(data) < 18 and select.select([fd], [], [], 5)[0]:
                data += os.read(fd, 64)
        finally:
            os.close(fd)
    assert data == bytes.fromhex("02 00 35 FE FF 00 00 03 37") * 2
    assert board_sim.model.is_unlocked(1)


def test_listen_must_be_socket_or_pty(clock: Clock) -> None:
    with pytest.raises(ValueError, match="socket://HOST:PORT, pty or a device path"):
        KerongBoardServer(KerongBoardSim(model_for(clock)), "tcp://x").start()


# -- the text console and the CLI -------------------------------------------------------------
def test_console_switches_faults_and_moves_keys(clock: Clock) -> None:
    model = model_for(clock, fobs={2: "K2"})
    board_sim = KerongBoardSim(model, boards=2)
    assert board_sim.control("no-reply on") == "ok"
    assert board_sim.faults.no_reply
    assert board_sim.control("delay 250") == "ok"
    assert board_sim.faults.delay_s == 0.25
    assert board_sim.control("offline 1 on") == "ok"
    assert board_sim.faults.offline_boards == {1}
    assert board_sim.control("garbage-only on") == "ok"
    assert board_sim.control("clear") == "ok"
    assert board_sim.faults.offline_boards == set() and not board_sim.faults.no_reply
    assert board_sim.control("take 2") == "error: slot 2 is locked"
    assert board_sim.control("jam 2 on") == "ok"
    assert board_sim.control("take 2") == "ok took K2"
    assert board_sim.control("status").startswith("ok 1:locked:- 2:open:-")
    assert board_sim.control("jump") .startswith("error: unknown command")
    assert board_sim.control("help").startswith("ok status")


def test_cli_help_documents_the_simulators() -> None:
    runner = CliRunner()
    result = runner.invoke(sim_group, ["--help"])
    assert result.exit_code == 0
    assert "board" in result.output and "Kerong" in result.output
    result = runner.invoke(sim_group, ["board", "--help"])
    assert result.exit_code == 0
    for option in ("--listen", "--boards", "--unlock-time-ms", "--no-reply", "--delay-ms",
                   "--bad-checksum", "--garbage", "--offline-board", "--jam", "--silent-unlock"):
        assert option in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--listen", "serial://x"], "cannot listen on serial://x"),
    (["--boards", "17"], "17"),
    (["--jam", "40"], "no slot 40"),
])
def test_cli_refuses_bad_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(sim_group, ["board", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_cli_board_serves_until_ctrl_c() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from simulators.cli import sim; sim()", "board",
         "--listen", "socket://127.0.0.1:0", "--boards", "2"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        banner = proc.stdout.readline()
        assert banner.startswith("kerong board simulator: 2 board(s) on socket://127.0.0.1:")
        url = banner.split()[-1]
        with KerongLockBank(url, {1: (0, 1), 17: (1, 1)}, max_pulse_ms=2000,
                            register_atexit=False) as bank:
            bank.unlock(17, 2000)
            proc.stdin.write("take 17\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "ok took FOB-017"
            assert bank.status()[17].key_present is False
            assert bank.status()[1].key_present is True
            proc.stdin.write("no-reply on\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "ok"
            with pytest.raises(LockBoardError, match=r"slot 1\): unlock: no reply"):
                bank.unlock(1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- issue 13: the wire the simulator models ------------------------------------------------
def _exchange(sock: socket.socket, *parts: tuple[bytes, float], listen_s: float = 0.3) -> bytes:
    """Send each part after its pause; return what came back within ``listen_s``."""
    for data, pause in parts:
        time.sleep(pause)
        sock.sendall(data)
    got = b""
    deadline = time.monotonic() + listen_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            got += sock.recv(4096)
    return got


def test_half_a_frame_is_dropped_after_the_inter_frame_timeout(clock: Clock) -> None:
    sim = KerongBoardSim(model_for(clock, boards=1), inter_frame_timeout_s=0.05)
    with KerongBoardServer(sim) as server:
        host, port = server.url.removeprefix("socket://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            status = bytes.fromhex("02 00 30 03 35")
            # the two halves 0.2 s apart: the board forgot the first, the tail is noise
            assert _exchange(sock, (status[:2], 0), (status[2:], 0.2)) == b""
            assert sim.truncated_dropped == 1
            # the same halves close together are one frame, answered
            assert _exchange(sock, (status[:2], 0), (status[2:], 0.0)).startswith(b"\x02\x00\x35")


def test_a_frame_sent_into_an_answer_garbles_both(clock: Clock) -> None:
    sim = KerongBoardSim(model_for(clock, boards=1))
    sim.set_faults(collisions=True, delay_s=0.1)
    with KerongBoardServer(sim) as server:
        host, port = server.url.removeprefix("socket://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            status = bytes.fromhex("02 00 30 03 35")
            got = _exchange(sock, (status, 0), (status, 0.03))  # talks over the answer
            assert got and FrameParser().feed_all(got)[0] == []  # noise, no frame
            assert sim.collisions_seen == 1
            assert _exchange(sock, (status, 0.2)).startswith(b"\x02\x00\x35")  # line free


def test_status_all_answered_as_one_aggregate_frame(clock: Clock) -> None:
    sim = KerongBoardSim(model_for(clock, boards=2, fobs={17: "X"}), boards=2,
                         status_all_variant="aggregate")
    (reply,) = ask(sim, "02 00 32 03 37")
    assert reply.startswith("02 00 36 02 00 FF FF 00 00 01 FF FF 01 00")


def test_the_pulse_and_frame_logs_keep_only_the_latest(clock: Clock) -> None:
    # `kiosk run` on simulated hardware pulses a coil at every draw and every return for as
    # long as it runs: what the simulator remembers of them must stop growing (issue 15, item 4).
    model = model_for(clock)
    board_sim = KerongBoardSim(model, boards=2)
    for n in range(LOG_LENGTH + 200):
        ask(board_sim, "02 00 31 03 36" if n % 2 else "02 10 31 03 46")
    assert len(board_sim.pulses) == LOG_LENGTH
    assert len(board_sim.received) == LOG_LENGTH
    assert board_sim.pulses[-1] == (0, 1, 500)  # the newest pulse is kept
    assert board_sim.pulses[-2] == (1, 1, 500)
