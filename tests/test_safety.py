"""The safety invariants (issue 14), end to end through the CLI against the sandbox:
opt-outs are never managed, a saved plan is applied only if it is the plan, the
executor refuses what no plan may ask, no list file vanishes in silence, state
is checked before anything is sent, and odd input and signals end in one line."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.apply import Executor, Guard
from reconciler.cli import main
from reconciler.connections import Connections
from reconciler.desired import load_desired
from reconciler.plan import Change, Plan, TargetPlan
from reconciler.state import current_lock_info, open_state

AT = "2026-11-23T00:00:00Z"
WOOXY_OPT_OUT = "+919812300001"  # seeded with rejectType unsubscribe
LOX24_OPT_OUT = "+4915112345601"  # seeded with unsubscribed_at


def run(*args: str, env: dict | None = None):
    result = CliRunner().invoke(main, list(args), env=env)
    text = result.output + result.stderr
    assert "Traceback" not in text, text
    return result


def plan_json(*extra: str) -> dict:
    result = run("plan", "--format", "json", "--at", AT, *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def sandbox_files(project: Path) -> dict[str, str]:
    """What every in-process emulator holds now (a digest of its state file)."""
    folder = project / "blocklists" / ".blocklist" / "sandbox"
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.json"))
    }


def write_list(project: Path, name: str, body: str) -> Path:
    path = project / "blocklists" / f"{name}.yaml"
    path.write_text(body)
    return path


# -- 3. opt-outs are never managed ---------------------------------------------------------


OPT_OUT_LIST = f"""version: 1
name: optouts
targets:
  - {{provider: wooxy, reject_type: invalid}}
  - {{provider: lox24, group_id: 7116}}
entries:
  - "{WOOXY_OPT_OUT}"
  - "{LOX24_OPT_OUT}"
"""


def test_a_declared_opt_out_is_left_alone_and_never_removed(project: Path) -> None:
    write_list(project, "optouts", OPT_OUT_LIST)
    doc = plan_json()
    lines = {(t["name"], c["number"]): c["action"] for t in doc["targets"] for c in t["changes"]}
    assert lines[("wooxy/account", WOOXY_OPT_OUT)] == "optout"  # not an update to invalid
    assert lines[("lox24/7116", LOX24_OPT_OUT)] == "optout"  # not adopted
    assert doc["summary"]["optout"] >= 2
    text = run("plan", "--at", AT).output
    assert "declared, but the user's own opt-out: left alone" in text
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    managed = json.loads(run("state", "list", "--format", "json").stdout)["targets"]
    assert WOOXY_OPT_OUT not in {e["number"] for e in managed["wooxy/account"]}
    assert LOX24_OPT_OUT not in {e["number"] for e in managed["lox24/7116"]}
    # dropping the declaration removes nothing: the opt-outs are the users' own
    (project / "blocklists" / "optouts.yaml").unlink()
    doc = plan_json()
    removes = {
        (t["name"], c["number"])
        for t in doc["targets"]
        for c in t["changes"]
        if c["action"] == "remove"
    }
    assert ("wooxy/account", WOOXY_OPT_OUT) not in removes
    assert ("lox24/7116", LOX24_OPT_OUT) not in removes
    # (each was added on the other provider, where it is no opt-out: removed there)
    assert removes == {("wooxy/account", LOX24_OPT_OUT), ("lox24/7116", WOOXY_OPT_OUT)}


def test_exclusive_mode_never_removes_an_opt_out(project: Path) -> None:
    body = OPT_OUT_LIST.replace("reject_type: invalid}", "reject_type: invalid, mode: exclusive}")
    write_list(project, "optouts", body.replace(f'  - "{WOOXY_OPT_OUT}"\n', ""))
    (project / "blocklists" / "fraud.yaml").write_text(
        (project / "blocklists" / "fraud.yaml")
        .read_text()
        .replace(
            "{provider: wooxy, reject_type: invalid}",
            "{provider: wooxy, reject_type: invalid, mode: exclusive}",
        )
    )
    (project / "blocklists" / "spam.yaml").write_text(
        (project / "blocklists" / "spam.yaml")
        .read_text()
        .replace(
            "{provider: wooxy, reject_type: import}",
            "{provider: wooxy, reject_type: import, mode: exclusive}",
        )
    )
    doc = plan_json()
    wooxy = next(t for t in doc["targets"] if t["name"] == "wooxy/account")
    removes = {c["number"] for c in wooxy["changes"] if c["action"] == "remove"}
    assert removes and WOOXY_OPT_OUT not in removes  # other unmanaged ones go, not the opt-out


# -- 4. apply PLANFILE applies the reviewed plan or nothing ---------------------------------


def saved(project: Path) -> tuple[Path, dict]:
    assert run("plan", "--out", "p.json", "--at", AT).exit_code == 0
    path = project / "p.json"
    return path, json.loads(path.read_text())


def tamper(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc))


def target_of(doc: dict, name: str) -> dict:
    return next(t for t in doc["targets"] if t["name"] == name)


def refused(project: Path, before: dict[str, str], *args: str) -> str:
    """The one error line of an apply refused with exit 4, nothing sent."""
    result = run("apply", "p.json", *args)
    assert result.exit_code == 4, result.output + result.stderr
    assert sandbox_files(project) == before  # nothing was sent to any provider
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "stale" in errors[0], result.stderr
    return errors[0]


def test_an_edited_plan_file_is_refused(project: Path) -> None:
    path, doc = saved(project)
    before = sandbox_files(project)
    original = json.loads(json.dumps(doc))

    # a protected number added to the changes
    target_of(doc, "kaleyra/sms")["changes"].append(
        {"action": "add", "number": "+18005550100", "reason": "x", "expires": None, "source": None}
    )
    tamper(path, doc)
    assert "+18005550100" in refused(project, before)

    # an unmanaged opt-out removed
    doc = json.loads(json.dumps(original))
    target_of(doc, "wooxy/account")["changes"].append(
        {
            "action": "remove",
            "number": WOOXY_OPT_OUT,
            "reason": None,
            "expires": None,
            "source": None,
        }
    )
    tamper(path, doc)
    assert WOOXY_OPT_OUT in refused(project, before)

    # kaleyra/sms changes redirected to whatsapp
    doc = json.loads(json.dumps(original))
    sms = target_of(doc, "kaleyra/sms")
    sms["name"], sms["scope"] = "kaleyra/whatsapp", {"channel": "whatsapp"}
    tamper(path, doc)
    assert "kaleyra/whatsapp" in refused(project, before)

    # a LOX24 add duplicated
    doc = json.loads(json.dumps(original))
    lox = target_of(doc, "lox24/7116")
    lox["changes"].append(next(c for c in lox["changes"] if c["action"] == "add"))
    tamper(path, doc)
    refused(project, before)

    # the desired-state digest changed
    doc = json.loads(json.dumps(original))
    doc["desired_digest"] = "0" * 64
    tamper(path, doc)
    assert "digest" in refused(project, before)

    # the lists changed after the plan was made
    tamper(path, original)
    fraud = project / "blocklists" / "fraud.yaml"
    kept = fraud.read_text()
    fraud.write_text(kept + '  - "+919876543299"\n')
    assert "lists changed" in refused(project, before)
    fraud.write_text(kept)

    # untouched, it applies
    assert run("apply", "p.json").exit_code == 0
    assert run("plan", "--detailed-exitcode", "--at", AT).exit_code == 0


def test_a_plan_without_lineage_is_refused_once_state_exists(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT, "--target", "kaleyra").exit_code == 0
    path, doc = saved(project)
    before = sandbox_files(project)
    assert doc["lineage"]
    doc["lineage"] = None
    tamper(path, doc)
    assert "lineage" in refused(project, before)
    doc.pop("lineage")
    tamper(path, doc)
    result = run("apply", "p.json")
    assert result.exit_code == 1 and "missing 'lineage'" in result.stderr


def test_apply_planfile_with_target_applies_only_that_target(project: Path) -> None:
    saved(project)
    result = run("apply", "p.json", "--target", "kaleyra/sms")
    assert result.exit_code == 0, result.stderr
    managed = json.loads(run("state", "list", "--format", "json").stdout)["targets"]
    assert set(managed) == {"kaleyra/sms"}
    # state moved on (its serial): the rest of the saved plan is stale now
    before = sandbox_files(project)
    stale = run("apply", "p.json", "--target", "wooxy")
    assert stale.exit_code == 4 and "stale" in stale.stderr
    assert sandbox_files(project) == before
    assert set(json.loads(run("state", "list", "--format", "json").stdout)["targets"]) == {
        "kaleyra/sms"
    }


# -- the executor refuses what no plan may ask ---------------------------------------------


def test_the_executor_refuses_protected_unmanaged_and_opt_out_numbers(project: Path) -> None:
    directory = project / "blocklists"
    desired = load_desired(directory)
    wooxy = desired.targets["wooxy/account"]
    lox = desired.targets["lox24/7116"]
    plan = Plan(
        dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
        [
            TargetPlan(
                wooxy,
                True,
                [
                    Change("add", "+18005550100", attrs=(("reject_type", "invalid"),)),
                    Change("remove", "+14155550199"),  # live, but state does not manage it
                    Change("remove", WOOXY_OPT_OUT),
                ],
                3,
                "",
                opt_outs=frozenset({WOOXY_OPT_OUT}),
            ),
            TargetPlan(
                lox,
                True,
                [Change("adopt", LOX24_OPT_OUT)],
                3,
                "",
                opt_outs=frozenset({LOX24_OPT_OUT}),
            ),
        ],
    )
    before = sandbox_files(project)

    async def go():
        with open_state("sqlite", path=project / "blocklists" / ".blocklist" / "state.db") as state:
            async with Connections(desired.config, directory) as conns:
                guard = Guard.of(plan, desired.protected)
                return await Executor(conns, state, guard=guard).run(plan)

    report = asyncio.run(go())
    reasons = {f.number: f.reason for f in report.failures}
    assert reasons["+18005550100"].startswith("refused: a protected number")
    assert reasons["+14155550199"].startswith("refused: state does not record it")
    assert reasons[WOOXY_OPT_OUT].startswith("refused: the provider marks it")
    assert reasons[LOX24_OPT_OUT].startswith("refused: the provider marks it")
    assert report.batches == 0 and sandbox_files(project) == before


def test_a_target_whose_first_ops_are_all_refused_opens_no_provider(project: Path) -> None:
    """More removes than a target's first requests hold (apply's head), every one of
    them unmanaged: all refused, each once, and neither provider is called (nor its
    sandbox file written)."""
    directory = project / "blocklists"
    desired = load_desired(directory)
    unmanaged = [f"+1415555{i:04d}" for i in range(25)]
    plan = Plan(
        dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
        [
            TargetPlan(desired.targets[name], True, [Change("remove", n) for n in unmanaged], 0, "")
            for name in ("wooxy/account", "lox24/7116")
        ],
    )
    before = sandbox_files(project)

    async def go():
        with open_state("sqlite", path=project / "blocklists" / ".blocklist" / "state.db") as state:
            async with Connections(desired.config, directory) as conns:
                report = await Executor(conns, state, guard=Guard.of(plan)).run(plan)
                return report, dict(conns.adapters)

    report, opened = asyncio.run(go())
    assert sorted(f.number for f in report.failures) == sorted(unmanaged * 2)
    assert all(f.reason.startswith("refused: state does not record it") for f in report.failures)
    assert report.batches == 0 and not opened and sandbox_files(project) == before


# -- 5. every YAML path is read or is an error ---------------------------------------------


@pytest.mark.parametrize("kind", ["dangling", "loop", "fifo", "directory", "dir-loop"])
def test_a_list_that_cannot_be_read_is_an_error_not_a_silent_skip(project: Path, kind: str) -> None:
    lists = project / "blocklists"
    path = lists / "broken.yaml"
    if kind == "dangling":
        path.symlink_to(lists / "gone.yaml")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
        (path / "inner.txt").write_text("x")
    else:
        (lists / "sub").mkdir()
        (lists / "sub" / "back").symlink_to(lists)
        path = lists / "sub" / "back"
    for command in (["validate"], ["plan", "--at", AT]):
        result = run(*command)
        assert result.exit_code == 1, (kind, result.output)
        assert path.relative_to(project).as_posix() in result.stderr, result.stderr


def test_an_unreadable_directory_is_an_error(project: Path) -> None:
    """A directory the user may not read. Root reads everything, so as root the
    check runs without the capabilities that let it (setpriv drops them)."""
    import shutil

    secret = project / "blocklists" / "team"
    secret.mkdir()
    (secret / "more.yaml").write_text("version: 1\n")
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv: cannot drop the capability to read anything")
        drop = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}"]
    code = "from reconciler.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    secret.chmod(0)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", code, "validate"],
            capture_output=True, text=True, env=env, cwd=project, timeout=60, check=False,
        )  # fmt: skip
    finally:
        secret.chmod(0o755)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "blocklists/team" in done.stderr and "cannot read directory" in done.stderr
    assert "Traceback" not in done.stderr


# -- 6. state integrity before writes --------------------------------------------------------


def test_an_empty_state_file_is_an_error_unless_init_state(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    db = project / "blocklists" / ".blocklist" / "state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        (project / "blocklists" / ".blocklist" / extra).unlink(missing_ok=True)
    db.write_bytes(b"")
    before = sandbox_files(project)
    result = run("apply", "--auto-approve", "--at", AT)
    assert result.exit_code == 1 and "is empty (0 bytes)" in result.stderr
    assert "--init-state" in result.stderr and sandbox_files(project) == before
    assert db.read_bytes() == b""
    started = run("apply", "--auto-approve", "--at", AT, "--init-state")
    assert started.exit_code == 0, started.stderr


def test_a_garbled_state_row_fails_before_any_request(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    db = project / "blocklists" / ".blocklist" / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO blocklist_entries (target, number, source) VALUES (?, ?, '')",
            ("kaleyra/sms", "not-a-number"),
        )
    conn.close()
    (project / "blocklists" / "spam.yaml").unlink()  # something to send
    before = sandbox_files(project)
    result = run("apply", "--auto-approve", "--at", AT, "--allow-unsafe")
    assert result.exit_code == 1 and "not an E.164 number" in result.stderr, result.stderr
    assert "state rm" in result.stderr and sandbox_files(project) == before


# -- 7. odd values and signals ----------------------------------------------------------------


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"])
@pytest.mark.parametrize("command", ["plan", "audit", "apply"])
def test_an_extreme_at_is_one_line(project: Path, command: str, at: str) -> None:
    extra = ["--auto-approve"] if command == "apply" else []
    result = run(command, "--at", at, *extra)
    assert result.exit_code == 1 and "out of range" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "value, why",
    [("clé-é", "non-ASCII"), ("sandbox-kaleyra-key\n", "newline"), ("a\x07b", "control character")],
)
def test_an_unusable_credential_is_one_line_before_any_request(project: Path, value, why) -> None:
    providers = project / "blocklists" / "providers.yaml"
    providers.write_text(
        providers.read_text().replace(
            "base_url: sandbox\n    credentials:\n      api_key: {env: KALEYRA_API_KEY}",
            "base_url: https://kaleyra.invalid\n    credentials:\n      api_key: {env: KALEYRA_API_KEY}",
            1,
        )
    )
    started = time.monotonic()
    result = run("plan", "--at", AT, env={"KALEYRA_API_KEY": value, "KALEYRA_SID": "HX1"})
    assert result.exit_code == 1 and why in result.stderr, result.stderr
    assert "KALEYRA_API_KEY" in result.stderr and value.strip() not in result.stderr
    assert time.monotonic() - started < 5  # no connection attempted, no retries


def test_a_merge_key_and_a_huge_number_are_reported_plainly(project: Path) -> None:
    write_list(
        project,
        "merge",
        "version: 1\nname: merge\nbase: &b {reason: x}\ntargets: [{provider: kaleyra, channel: sms}]\n"
        "entries:\n  - <<: *b\n    number: '+919876543211'\n",
    )
    result = run("validate")
    assert result.exit_code == 1 and "merge keys (<<) are not supported" in result.stderr
    (project / "blocklists" / "merge.yaml").unlink()
    write_list(
        project,
        "huge",
        "version: 1\nname: huge\ntargets: [{provider: kaleyra, channel: sms}]\n"
        f"entries:\n  - '{'9' * 1_000_000}'\n",
    )
    result = run("validate")
    assert result.exit_code == 1 and "characters)" in result.stderr
    assert max(len(line) for line in result.stderr.splitlines()) < 300


def test_state_import_waits_for_the_apply_lock(project: Path) -> None:
    assert run("apply", "--auto-approve", "--at", AT).exit_code == 0
    assert run("state", "export", "s.json").exit_code == 0
    with open_state("sqlite", path=project / "blocklists" / ".blocklist" / "state.db") as state:
        state.acquire_lock(current_lock_info("apply"))
        result = run("state", "import", "s.json", "--yes")
        assert result.exit_code == 1 and "state is locked by" in result.stderr
        result = run("state", "rm", "+919876543210", "--target", "kaleyra/sms")
        assert result.exit_code == 1 and "state is locked by" in result.stderr


def test_sigterm_finishes_what_is_in_flight_reports_and_exits_143(project: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")},
        "BLOCKLIST_SANDBOX_FAULTS": "latency=300ms",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli import main; main()", "apply",
         "--auto-approve", "--at", AT, "--report", "report.json"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:  # into the apply: every request takes 300 ms
        if "/" in line and ("ok in batch" in line or "retrying" in line):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err and "SIGTERM" in err
    report = json.loads((project / "report.json").read_text())
    assert report["interrupted"] is True and report["ok"] is False
    audit = (project / "blocklists" / ".blocklist" / "audit.log.jsonl").read_text().splitlines()
    record = json.loads(audit[-1])
    assert record["interrupted"] is True and record["signal"] == "SIGTERM"
