"""Run the real zoo CLI with its stderr on a pseudo-terminal, as a person at a terminal sees it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time


def run_on_terminal(*args: str, env: dict[str, str] | None = None, columns: int = 80,
                    timeout: float = 600) -> tuple[int, str, str]:  # fmt: skip
    """``python -m zoo ARGS`` with stderr on a pty (``columns`` wide) and stdout on a pipe: (exit code, stdout,
    everything the terminal received, carriage returns and escape sequences included)."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    full_env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=follower, env=full_env)  # fmt: skip
    os.close(follower)
    screen = bytearray()
    out = bytearray()
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    streams = [leader, proc.stdout.fileno()]
    while streams and time.monotonic() < deadline:
        ready, _, _ = select.select(streams, [], [], 1.0)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty's other side closed (EIO on Linux)
                chunk = b""
            if not chunk:
                streams.remove(fd)
            elif fd == leader:
                screen += chunk
            else:
                out += chunk
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    os.close(leader)
    return proc.returncode, out.decode(errors="replace"), screen.decode(errors="replace")


def final_lines(screen: str) -> list[str]:
    """What stays on the terminal's lines: each line's text after its last carriage return, escapes removed."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r\n", "\n")
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
