"""The virtual MicroPython board (:mod:`sim.board`): REPL bytes as mpremote's transport expects them, real MicroPython
behind them, and the third-party ``mpremote`` working against the pty (issue 6, the simulator part).

The raw-REPL tests talk to the pty directly with a minimal host (:class:`PtyHost`) so that they assert exact wire
bytes; the acceptance tests run the real ``mpremote`` as a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.board import RAW_REPL_BANNER, VirtualBoard, ensure_micropython_runtime

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0


@pytest.fixture(scope="module", autouse=True)
def micropython_runtime() -> Path:
    # The board installs the webassembly port on first use (the only step needing the network); doing it here keeps
    # the download out of the first test's timeouts.
    return ensure_micropython_runtime()


@pytest.fixture
def board(tmp_path: Path) -> Iterator[VirtualBoard]:
    with VirtualBoard(tmp_path / "board", state_dir=tmp_path / "state") as virtual_board:
        yield virtual_board


class PtyHost:
    """The host end of the serial line: raw bytes in, raw bytes out, every read with a deadline."""

    def __init__(self, port: str) -> None:
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)

    def close(self) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_until(self, ending: bytes, timeout: float = TIMEOUT) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(ending):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {ending!r}; got {data!r}")
            if select.select([self.fd], [], [], remaining)[0]:
                data += os.read(self.fd, 1)
        return data

    def read_exactly(self, count: int, timeout: float = TIMEOUT) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {data!r}, expected {count} bytes")
            if select.select([self.fd], [], [], remaining)[0]:
                data += os.read(self.fd, count - len(data))
        return data

    def enter_raw_repl(self) -> None:
        self.write(b"\r\x03")
        self.write(b"\r\x01")
        self.read_until(RAW_REPL_BANNER + b">")

    def exec_raw(self, code: str) -> tuple[bytes, bytes]:
        """Run code in the raw REPL (at its ``>`` prompt); return (stdout, traceback) and leave it at ``>``."""
        self.write(code.encode() + b"\x04")
        assert self.read_exactly(2) == b"OK"
        stdout = self.read_until(b"\x04")[:-1]
        traceback = self.read_until(b"\x04")[:-1]
        assert self.read_exactly(1) == b">"
        return stdout, traceback


@pytest.fixture
def host(board: VirtualBoard) -> Iterator[PtyHost]:
    pty_host = PtyHost(board.port)
    yield pty_host
    pty_host.close()


def mpremote(link: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", str(link), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_raw_repl_exec_gives_ok_stdout_and_two_eofs(host: PtyHost) -> None:
    host.enter_raw_repl()
    host.write(b"print(1+1)\x04")
    assert host.read_until(b">") == b"OK2\n\x04\x04>"


def test_exception_traceback_comes_back_in_the_stderr_part(host: PtyHost) -> None:
    host.enter_raw_repl()
    stdout, traceback = host.exec_raw("print('before')\n1/0")
    assert stdout == b"before\n"
    assert traceback == (
        b'Traceback (most recent call last):\r\n  File "<stdin>", line 2, in <module>\r\n'
        b"ZeroDivisionError: divide by zero\r\n"
    )
    # Emulated natives (the OSError shim) keep board errno text and hide their own frames.
    _, traceback = host.exec_raw("import os\nos.stat('missing')")
    assert traceback.endswith(b"<module>\r\nOSError: [Errno 2] ENOENT\r\n"), traceback


def test_raw_paste_runs_a_large_script_under_window_flow_control(board: VirtualBoard, host: PtyHost) -> None:
    lines = [f"v{i} = {i} * 3" for i in range(2000)]
    script = ("\n".join(lines) + "\nprint(v1999, len([k for k in dir() if k.startswith('v')]))\n").encode()
    assert len(script) > 30_000
    host.enter_raw_repl()
    host.write(b"\x05A\x01")
    assert host.read_exactly(2) == b"R\x01"
    (window,) = struct.unpack("<H", host.read_exactly(2))
    assert window == board.paste_window == 128
    credit, acks, sent = window, 0, 0
    while sent < len(script):
        while credit == 0 or select.select([host.fd], [], [], 0)[0]:
            flow = host.read_exactly(1)
            assert flow == b"\x01", flow
            credit += window
            acks += 1
        chunk = script[sent : sent + credit]
        host.write(chunk)
        sent += len(chunk)
        credit -= len(chunk)
    host.write(b"\x04")
    tail = host.read_until(b"\x04")
    acks += tail.count(b"\x01")
    assert tail.replace(b"\x01", b"") == b"\x04"  # end of data acknowledged
    assert acks == 1 + len(script) // window  # the initial second window, then one per window consumed
    assert host.read_until(b">") == b"5997 2000\n\x04\x04>"


def test_file_write_reads_back_with_the_same_sha256(board: VirtualBoard, host: PtyHost) -> None:
    data = bytes(range(256)) * 9 + b"tail"
    host.enter_raw_repl()
    host.exec_raw("f=open('blob.bin','wb')\nw=f.write")  # mpremote's own write sequence (mpremote ``transport.py``)
    for offset in range(0, len(data), 256):
        assert host.exec_raw(f"w({data[offset : offset + 256]!r})") == (b"", b"")
    host.exec_raw("f.close()")
    stdout, traceback = host.exec_raw(
        "import hashlib, binascii\nh=hashlib.sha256()\nwith open('blob.bin','rb') as f:\n h.update(f.read())\n"
        "print(binascii.hexlify(h.digest()).decode())"
    )
    assert traceback == b""
    assert stdout.strip().decode() == hashlib.sha256(data).hexdigest()
    assert board.files()["/blob.bin"] == data


def test_soft_reset_keeps_files_and_starts_a_fresh_interpreter(board: VirtualBoard, host: PtyHost) -> None:
    host.enter_raw_repl()
    host.exec_raw("kept = 42\nwith open('keep.txt','w') as f:\n f.write('still here')")
    host.write(b"\x04")  # Ctrl-D on an empty raw line: soft reset
    assert host.read_until(RAW_REPL_BANNER + b">") == b"OK\r\nMPY: soft reboot\r\n" + RAW_REPL_BANNER + b">"
    stdout, traceback = host.exec_raw(
        "import sys\nprint('kept' in globals(), open('keep.txt').read(), sys.implementation.name)"
    )
    assert (stdout, traceback) == (b"False still here micropython\n", b"")
    # machine.soft_reset() (emulated: SystemExit, as on ports) resets too, after closing the output framing.
    host.write(b"import machine\nmachine.soft_reset()\x04")
    assert host.read_until(RAW_REPL_BANNER + b">") == b"OK\x04\x04MPY: soft reboot\r\n" + RAW_REPL_BANNER + b">"
    assert board.soft_resets == 2
    assert board.files() == {"/keep.txt": b"still here"}


def test_ctrl_c_interrupts_a_busy_loop_and_the_board_stays_usable(board: VirtualBoard, host: PtyHost) -> None:
    host.enter_raw_repl()
    host.exec_raw("open('f.txt','w').write('x')")
    host.write(b"import time\nprint('looping')\nwhile True:\n time.sleep(0.01)\x04")
    assert host.read_until(b"looping\n") == b"OKlooping\n"
    host.write(b"\x03")
    assert host.read_until(b">") == b"\x04KeyboardInterrupt: \r\n\x04>"
    assert host.exec_raw("print(open('f.txt').read())") == (b"x\n", b"")
    assert board.interrupts == 1


def test_friendly_repl_banner_expression_echo_and_raw_switch(board: VirtualBoard, host: PtyHost) -> None:
    host.write(b"\x02")
    banner = host.read_until(b">>> ")
    assert banner.startswith(b"\r\nMicroPython v1.27.0") and b'Type "help()"' in banner
    host.write(b"1+2\r")
    assert host.read_until(b">>> ") == b"1+2\r\n3\r\n>>> "
    host.write(b"for i in range(2):\r")
    assert host.read_until(b"... ") == b"for i in range(2):\r\n... "
    host.write(b" print(i)\r\r")
    assert host.read_until(b">>> ") == b" print(i)\r\n... \r\n0\r\n1\r\n>>> "
    host.write(b"\x01")
    assert host.read_until(b">") == b"\r\n" + RAW_REPL_BANNER + b">"
    host.write(b"\x02")
    assert host.read_until(b">>> ").startswith(b"\r\nMicroPython ")


def test_mpremote_ls_lists_files_written_to_the_board(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "preloaded.py").write_text("X = 1\n")
    link = tmp_path / "board"
    with VirtualBoard(link, state_dir=state) as board:
        host = PtyHost(board.port)
        try:
            host.enter_raw_repl()
            host.exec_raw("import os\nos.mkdir('lib')\nopen('lib/esl.py','w').write('Y = 2\\n')\nopen('cfg.json','w')")
            host.write(b"\r\x02")  # back to the friendly REPL, as a tool leaves the board
            host.read_until(b">>> ")
        finally:
            host.close()
        listing = mpremote(link, "ls")
        assert listing.returncode == 0, listing.stderr
        names = {line.split()[-1] for line in listing.stdout.splitlines()[1:]}
        assert names == {"preloaded.py", "lib/", "cfg.json"}, listing.stdout
        assert "           6 preloaded.py" in listing.stdout  # sizes, as littlefs boards report them
        nested = mpremote(link, "ls", ":lib")
        assert nested.returncode == 0 and "esl.py" in nested.stdout, nested.stdout + nested.stderr


def test_mpremote_cp_then_cat_round_trips_a_file(tmp_path: Path) -> None:
    local = tmp_path / "settings.py"
    local.write_text("".join(f"SETTING_{i} = {i!r}\n" for i in range(300)))
    link = tmp_path / "board"
    with VirtualBoard(link, state_dir=tmp_path / "state") as board:
        copied = mpremote(link, "cp", str(local), ":remote.py")
        assert copied.returncode == 0, copied.stderr
        assert board.files()["/remote.py"] == local.read_bytes()
        shown = mpremote(link, "cat", ":remote.py")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == local.read_text()
        # Same chain with mkdir, sha256sum, rm and an error mapped back to a host errno by mpremote.
        chained = mpremote(link, "mkdir", ":lib", "+", "cp", str(local), ":lib/s.py", "+", "sha256sum", ":lib/s.py")
        assert chained.returncode == 0, chained.stderr
        assert hashlib.sha256(local.read_bytes()).hexdigest() in chained.stdout
        missing = mpremote(link, "rm", ":lib/nope.py")
        assert missing.returncode == 1 and "No such file or directory" in missing.stderr, missing.stderr
        assert sorted(board.files()) == ["/lib/s.py", "/remote.py"]


def test_main_board_serves_until_sigterm_and_removes_its_link(tmp_path: Path) -> None:
    link = tmp_path / "board"
    state = tmp_path / "state"
    code = f"import sys; from sim.board import main_board; sys.exit(main_board({str(link)!r}, {str(state)!r}))"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert "virtual MicroPython board on /dev/" in process.stdout.readline()
        assert link.is_symlink()
        written = mpremote(link, "exec", "open('main.py','w').write('print(1)')", "+", "ls")
        assert written.returncode == 0 and "main.py" in written.stdout, written.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
    assert not link.exists() and not link.is_symlink()
    assert (state / "main.py").read_text() == "print(1)"  # a given state dir is kept


def test_stop_closes_every_fd_and_ends_the_interpreter(tmp_path: Path) -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    board = VirtualBoard(tmp_path / "board")
    board.start()
    temporary_state = board.state_dir
    runtime = board._runtime
    assert runtime is not None and runtime.process.poll() is None
    board.stop()
    assert runtime.process.poll() is not None
    assert set(os.listdir("/proc/self/fd")) == fds_before
    assert not (tmp_path / "board").is_symlink()
    assert not temporary_state.exists()


def test_board_installs_its_runtime_on_first_use(
    micropython_runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty user cache and an npm that "downloads" the copy installed above: start() must install it and boot.
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("STOREEDGE_MICROPYTHON_MJS", raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(
        '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix="$2"; shift; done\n'
        'mkdir -p "$prefix/node_modules/@micropython"\n'
        f'cp -r {micropython_runtime.parent} "$prefix/node_modules/@micropython/"\n'
    )
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with VirtualBoard(tmp_path / "board") as board:
        assert board.version.startswith("v1.27.0")
    assert list(cache.glob("storeedge/micropython-1.27.0/node_modules/@micropython/*/micropython.mjs"))
