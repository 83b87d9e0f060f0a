"""The install scripts on a terminal: the progress line fits it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import time

import pytest

from tests.test_config import ROOT


@pytest.mark.parametrize("columns", [80, 60])
def test_the_install_progress_line_never_reaches_the_terminal_s_width(tmp_path, columns):
    """The issue: the progress line was 87 characters wide and scrolled 84 rows at 80 columns."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    # A pip stand-in that names long packages for a couple of seconds.
    fake_pip = (
        'for i in $(seq 1 8); do echo "Collecting very-long-package-name-number-$i'
        '-with-extras[and,more,extras]>=1.2.3,<4 (from -r requirements.txt (line $i))";'
        " sleep 0.3; done"
    )
    script = f'log={tmp_path}/install.log; : >"$log"; . {ROOT}/scripts/_progress.sh; '
    script += f"_mm_step '[2/2] market_maker[dev]' bash -c '{fake_pip}'"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.Popen(["bash", "-c", script], stderr=child, stdin=child, env=env)
    os.close(child)
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=30) == 0
    os.close(main)
    text = out.decode()
    frames = [f.replace("\x1b[K", "").rstrip("\n") for f in text.replace("\r\n", "\n").split("\r")]
    frames = [f for f in frames if f]
    assert any("packages seen  Collecting very" in f for f in frames), frames
    assert frames[-1] == "  [2/2] market_maker[dev]: done"
    assert max(len(f) for f in frames) <= columns - 1
