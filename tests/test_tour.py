"""The README's offline tour, run as a user on a fresh clone would at an 80-column terminal:
the loopback exchange, a paper run, a recording and its backtest. Every command exits 0, none
prints a traceback, and no line is wider than the terminal."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_config import ROOT
from tests.test_runtime import read_pty

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="a POSIX terminal"),
]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def tour_commands() -> list[str]:
    """The shell commands of the README's first Hyperliquid code block."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("### Hyperliquid: live market data", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert all(len(line) <= 80 for line in block.splitlines()), "the README block wraps"
    joined = block.replace("\\\n", " ")
    return [c.strip() for line in joined.splitlines() for c in line.split("&&") if c.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def argv(command: str, port: int) -> list[str]:
    words = shlex.split(command.rstrip("& "))
    assert words[0] == "market-maker", command
    words = [w.replace("8765", str(port)) for w in words[1:]]
    if "--duration" in words:  # seconds each, not the README's 20
        words[words.index("--duration") + 1] = "4"
    return [sys.executable, "-m", "market_maker", *words]


def at_terminal(args: list[str], cwd: Path, timeout_s: float = 60.0) -> tuple[int, str]:
    """Run ``args`` on a pseudo-terminal of 24 x 80; its exit status and the screen's text."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "80"}
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    try:
        shown = read_pty(master, lambda b: proc.poll() is not None, timeout_s)
        shown += read_pty(master, lambda b: False, 0.3)  # what is left in the terminal
        code = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, _ANSI.sub("", shown.decode("utf-8", "replace"))


def test_the_readme_offline_tour_works_at_80_columns(tmp_path):
    commands = tour_commands()
    assert [c.split()[1] for c in commands] == ["fake-exchange", "run", "record", "backtest"]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fake = subprocess.Popen(
        argv(commands[0], port),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = [fake.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        assert f"use: --ws-url ws://127.0.0.1:{port}/ws" in banner[2], banner
        screens = {}
        for command in commands[1:]:
            code, screen = at_terminal(argv(command, port), tmp_path)
            name = command.split()[1]
            screens[name] = screen
            assert code == 0, (command, screen[-2000:])
            assert "Traceback" not in screen and "error" not in screen.lower(), screen[-2000:]
            lines = screen.replace("\r", "\n").split("\n")
            wide = [line for line in lines if len(line) > 80]
            assert not wide, (command, wide[:3])
    finally:
        fake.terminate()
        rest, _ = fake.communicate(timeout=10)
    assert fake.returncode in (0, -15)
    assert all(len(line) <= 80 for line in banner + rest.splitlines())
    assert "market_maker  BTC" in screens["run"] and "Stopped: duration reached" in screens["run"]
    assert "recorded " in screens["record"] and (tmp_path / "fake.gz").stat().st_size > 1000
    assert "Backtest  data:fake.gz" in screens["backtest"]
    fills = re.search(r"fills\s+(\d+)", screens["backtest"])
    assert fills is not None
    time.sleep(0)  # (the fake stopped above)
