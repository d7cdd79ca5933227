"""Small things a person running the CLI reads: the refresh notices, ``-v`` without
asyncio's noise, the actor an apply records, ``state list`` columns and the
``--allow-unsafe`` wording (issue "plans and applies that reviewers and operators
can read")."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from reconciler import ci
from reconciler.cli import main
from reconciler.domain import LiveEntry, ManagedEntry, Target
from reconciler.operations.common import refresh_targets
from reconciler.operations.state import StateListing
from reconciler.operations.ui import QuietUI
from reconciler.plan import Plan, plan_target
from reconciler.views.plan import render_text
from reconciler.views.state import render_listing

REPO = Path(__file__).resolve().parent.parent


def test_a_target_with_one_live_entry_says_entry() -> None:
    class Adapter:
        capabilities = SimpleNamespace(can_list=True)

        def __init__(self, n: int) -> None:
            self.n = n

        async def refresh(self, target: Target) -> list[LiveEntry]:
            return [LiveEntry(f"+1415555010{i}") for i in range(self.n)]

    class Connections:
        def adapter(self, name: str) -> Adapter:
            return Adapter(1 if name == "one" else 1_234 if name == "many" else 0)

    ui = QuietUI()
    targets = [Target(f"{n}/x", n, "kaleyra") for n in ("one", "many", "none")]
    asyncio.run(refresh_targets(Connections(), targets, ui))  # type: ignore[arg-type]
    notices = sorted(ui.notices)
    assert notices[0].startswith("many/x: 1,234 live entries (")
    assert notices[1].startswith("none/x: 0 live entries (")
    assert notices[2].startswith("one/x: 1 live entry (")


def test_verbose_logs_requests_but_not_the_event_loop(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "NO_COLOR")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "plan", "-v", "--target", "phonely"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "GET /api/agent-block-list -> 200" in proc.stderr
    assert "selector" not in proc.stderr.lower() and "asyncio" not in proc.stderr


def test_the_actor_is_the_login_name_else_the_uid(monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    assert ci.actor() == "alice"

    def nobody() -> str:
        raise KeyError("getpwuid(): uid not found: 4242")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert ci.actor() == f"uid {os.getuid()}"
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert ci.actor() == "octocat"


def test_state_list_columns_line_up() -> None:
    entries = {
        "+14155550123": ManagedEntry("+14155550123", None, "fraud", source="blocklists/a.yaml:3"),
        "+4915112345678": ManagedEntry(
            "+4915112345678",
            dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
            "sim-box fraud",
            source="blocklists/spam.yaml:12",
            pending="HTTP 503",
        ),
    }
    text = render_listing(StateListing("L", 4, {"kaleyra/sms": entries}), fmt="text", mask=False)
    rows = text.splitlines()[2:]
    assert rows[0].index("fraud") == rows[1].index("sim-box fraud")
    assert rows[0].index("expires never") == rows[1].index("expires 2027-03-01")
    assert rows[0].index("blocklists/a.yaml:3") == rows[1].index("blocklists/spam.yaml:12")
    assert rows[1].endswith("PENDING remove: HTTP 503")


def test_the_unsafe_line_says_what_the_flags_do() -> None:
    target = Target("lox24/7116", "lox24", "lox24", (("group_id", "7116"),))
    managed = {f"+4915112345{i:03d}": ManagedEntry(f"+4915112345{i:03d}") for i in range(12)}
    live = {n: LiveEntry(n) for n in managed}
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    plan = Plan(now, [plan_target(target, {}, live, managed, now)])
    refused = render_text(plan, color=False, mask=False)
    assert refused.endswith("apply refuses it unless --allow-unsafe is given.")
    allowed = render_text(plan, color=False, mask=False, allow_unsafe=True)
    assert allowed.endswith("--allow-unsafe is given, so apply carries it out.")


def test_plan_takes_by(project: Path) -> None:
    run = CliRunner().invoke
    by_target = run(main, ["plan", "--by", "target", "--no-color", "--target", "kaleyra"])
    assert by_target.exit_code == 0 and "→" not in by_target.stdout
    assert by_target.stdout.startswith("# kaleyra/sms")
    by_number = run(main, ["plan", "--no-color", "--target", "kaleyra", "--target", "lox24"])
    assert "→ kaleyra/sms, lox24/7116" in by_number.stdout


def test_apply_shows_its_plan_by_target_and_in_full_when_asked(project: Path) -> None:
    # the plan shown before apply asks (or applies with --auto-approve) takes the same
    # layout options as `plan`: a reviewer of a big change sees every line with --full
    extra = "".join(f'  - "+9198765{i:05d}"\n' for i in range(60))
    fraud = project / "blocklists" / "fraud.yaml"
    fraud.write_text(fraud.read_text() + extra)
    run = CliRunner().invoke
    args = ["apply", "--auto-approve", "--no-color", "--target", "kaleyra"]
    cut = run(main, [*args, "--by", "target"])
    assert cut.exit_code == 0, cut.output
    assert cut.stdout.startswith("# kaleyra/sms") and "→" not in cut.stdout
    assert "…and " in cut.stdout
    fraud.write_text(fraud.read_text() + extra.replace("98765", "98764"))
    whole = run(main, [*args, "--full"])
    assert whole.exit_code == 0, whole.output
    assert "…and " not in whole.stdout
    assert all(f"+9198764{i:05d}" in whole.stdout for i in range(60))


#: ``entry`` as the ``blocklist`` script runs it, with an ``atexit`` handler and an object
#: whose finalizer says it ran (a usual exit frees it; the fast one does not)
ENTRY = """
import atexit, sys
atexit.register(lambda: print("atexit ran", file=sys.stderr))
class Noisy:
    def __del__(self):
        print("freed", file=sys.stderr)
held = Noisy()
from reconciler.cli import entry
sys.argv = ["blocklist", *sys.argv[1:]]
entry()
"""


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["plan", "--format", "json"], 0),
        (["plan", "--detailed-exitcode", "--format", "json"], 2),
        (["plan", "-C", "nowhere"], 1),
    ],
)
def test_the_command_exits_without_freeing_its_objects(
    project: Path, args: list[str], status: int
) -> None:
    """Its status, all its output (a JSON plan through a pipe), the atexit handlers:
    as a usual exit; but no object is freed one by one on the way out."""
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "NO_COLOR")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == status, proc.stderr
    assert "atexit ran" in proc.stderr and "freed" not in proc.stderr
    if status != 1:
        assert json.loads(proc.stdout)["targets"]


def test_the_usual_exit_where_a_fast_one_could_lose_something() -> None:
    from reconciler.cli import exit_code

    assert exit_code("a message") is None  # Python prints it
    assert exit_code(True) is None
    started, release = threading.Event(), threading.Event()
    other = threading.Thread(target=lambda: (started.set(), release.wait()))
    other.start()
    started.wait()
    try:
        assert exit_code(0) is None  # another thread still running
    finally:
        release.set()
        other.join()
