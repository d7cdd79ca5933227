"""``blocklist apply`` on a real terminal (a pseudo-terminal): Terraform's ``yes``
prompt, and the progress bar honouring ``--no-color`` and ``NO_COLOR``.

The CLI runs in a child process whose stdin, stdout and stderr are one pty, so it
sees a terminal exactly as a person's shell gives it one; the in-process sandbox
answers with ``latency`` so the bar is drawn while requests are in flight.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Do you want to apply these changes? Only 'yes' will be accepted."
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(text: str) -> list[str]:
    """The SGR parameters that set a colour (foreground, background, 256 or RGB)."""
    found = []
    for match in SGR.finditer(text):
        for p in match.group(1).split(";"):
            if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
                found.append(p)
    return found


def in_terminal(cwd: Path, args: list[str], answer: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``blocklist ARGS`` on a pty, type ``answer`` at the prompt; (exit code, all
    it wrote to the terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    child_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI")}
    child_env.update({"PYTHONPATH": str(REPO), "TERM": "xterm-256color", "COLUMNS": "160"})
    for key in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "BLOCKLIST_SANDBOX_FAULTS"):
        child_env.pop(key, None)
    child_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        env=child_env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal (EIO on Linux)
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and b"Enter a value" in out:
                os.write(master, answer.encode() + b"\r")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "blocklists", tmp_path / "blocklists")
    return tmp_path


@pytest.mark.parametrize("answer", ["no", "y"])
def test_only_yes_applies(lists: Path, answer: str) -> None:
    code, out = in_terminal(lists, ["apply", "--no-color"], answer, {})
    assert code == 0, out
    assert PROMPT in out and "  Enter a value: " in out
    assert "Apply cancelled." in out and "Apply complete." not in out
    assert not (lists / "blocklists" / ".blocklist" / "audit.log.jsonl").exists()


def test_yes_applies_with_a_progress_bar_and_no_colour(lists: Path) -> None:
    faults = {"BLOCKLIST_SANDBOX_FAULTS": "latency=150ms"}
    code, out = in_terminal(lists, ["apply", "--no-color"], "yes", faults)
    assert code == 0, out
    assert PROMPT in out and "Apply complete." in out
    # the bar: one per target, counts with the plan's separator, an ETA column
    plain = SGR.sub("", out)
    assert re.search(r"kaleyra/sms\s.*\b9/9 eta", plain), out  # 9 adds (an adopt sends none)
    assert "wooxy/account" in out.split(PROMPT)[1]
    assert colour_codes(out) == [], sorted(set(colour_codes(out)))
    again_code, again = in_terminal(lists, ["plan", "--no-color"], "", {})
    assert again_code == 0 and "No changes." in again


@pytest.mark.parametrize(("env", "coloured"), [({}, True), ({"NO_COLOR": "1"}, False)])
def test_the_bar_follows_no_color(lists: Path, env: dict[str, str], coloured: bool) -> None:
    """Colour on a terminal by default (so the check above can fail), none with a
    non-empty NO_COLOR (an empty one does not count: ``test_empty_no_color…``)."""
    code, out = in_terminal(
        lists,
        ["apply", "--target", "kaleyra"],
        "yes",
        {"BLOCKLIST_SANDBOX_FAULTS": "latency=100ms", **env},
    )
    assert code == 0 and "Apply complete." in out, out
    bar = out.split(PROMPT)[1]
    assert bool(colour_codes(bar)) is coloured, sorted(set(colour_codes(bar)))


def test_empty_no_color_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.views.terminal import color_wanted

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("NO_COLOR", "")
    assert color_wanted(False, Tty()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert color_wanted(False, Tty()) is False
    monkeypatch.delenv("NO_COLOR")
    assert color_wanted(True, Tty()) is False and color_wanted(False, Tty()) is True
