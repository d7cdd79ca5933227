"""A local stand-in for a GitHub Actions runner, for tests/test_github_workflows.py.

It runs one job of a workflow as a runner would: the job's ``if:``, ``environment:``
and ``strategy.matrix``; each step's ``if:`` and ``${{ }}`` expressions (the subset
the workflows use); ``run:`` blocks in ``bash --noprofile --norc -eo pipefail`` with
the GITHUB_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files; and a local
composite action (``uses: ./`` or ``uses: ./base``) EXPANDED: its action.yml is read
and its ``runs.steps`` run with an ``inputs`` context, its outputs mapped back, so the
tests exercise the real action.

What is simulated, and only that:
- ``actions/checkout``: the test lays the checkouts out beforehand (a no-op here);
- ``actions/setup-python``: the runner's Python is this interpreter, behind a fake
  ``python`` on PATH that execs it, except for ``python -m pip install DIR``: that
  "installs" DIR by writing a ``blocklist`` console script which imports the package
  from DIR (first on sys.path) and logs its argv, cwd, the package's file and the
  environment's NAMES (never values) to ``tool_log``. So the tool the job runs is the one its install step named,
  and nothing else: no other ``blocklist`` is on PATH;
- ``actions/upload-artifact``: files copied into an artifact store;
- ``gh``: a fake over a small JSON "world" (PR comments, issues, the pull requests of
  commits, workflow runs and the artifact store), which records every call.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPOSITORY = "acme/blocklists"
DEFAULT_BRANCH = "main"
BASE_SHA = "b" * 40  # the default branch's head when a pull request is planned


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


# -- expressions -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<func>[A-Za-z]+)\((?P<noargs>\))?|(?P<lit>true|false|null)\b"
    r"|(?P<path>[A-Za-z_][\w.-]*)|(?P<num>\d+))"
)
_STATUS = ("always", "success", "failure", "cancelled")


def _format(template: str, *args: Any) -> str:
    return re.sub(r"\{(\d+)\}", lambda m: text(args[int(m.group(1))]), template)


_FUNCTIONS = {
    "format": _format,
    "contains": lambda a, b: str(b).lower() in str(a).lower(),
    "startsWith": lambda a, b: str(a).lower().startswith(str(b).lower()),
    "fromJSON": json.loads,
}


def evaluate(expr: str, ctx: dict[str, Any], failed: bool) -> Any:
    """A GitHub expression, the subset the workflows use: literals, context paths,
    ==, !=, !, &&, ||, parentheses, the status functions, format, contains,
    startsWith and fromJSON. A missing context value reads as ''."""
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
        elif m["func"]:
            name = m["func"]
            if name in _STATUS:
                assert m["noargs"], f"{name}() takes no argument"
                status = {"always": True, "cancelled": False, "success": not failed}
                out.append(str(status.get(name, failed)))
                continue
            assert name in _FUNCTIONS, f"unknown function {name}()"
            out.append(f"_f_{name}(" + (")" if m["noargs"] else ""))
        elif m["lit"]:
            out.append({"true": "True", "false": "False", "null": "None"}[m["lit"]])
        elif m["num"]:
            out.append(m["num"])
        else:
            value: Any = ctx
            for part in m["path"].split("."):
                value = value.get(part, "") if isinstance(value, dict) else ""
            key = f"_v{len(values)}"
            values[key] = value
            out.append(key)
    scope = {f"_f_{k}": v for k, v in _FUNCTIONS.items()} | values
    return eval(" ".join(out), {"__builtins__": {}}, scope)  # noqa: S307 - our own tokens


def text(value: Any) -> str:
    """A value as GitHub writes it into a string: true/false, '' for null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def interpolate(value: Any, ctx: dict[str, Any], failed: bool) -> str:
    return re.sub(
        r"\$\{\{(.*?)\}\}", lambda m: text(evaluate(m.group(1), ctx, failed)), text(value)
    )


def condition(step_if: Any, ctx: dict[str, Any], failed: bool) -> bool:
    cond = str(step_if if step_if is not None else "success()")
    cond = cond.strip().removeprefix("${{").removesuffix("}}")
    if not re.search(r"\b(always|success|failure|cancelled)\(\)", cond):
        cond = f"success() && ({cond})"
    return bool(evaluate(cond, ctx, failed))


# -- the fakes -------------------------------------------------------------------------------

FAKE_GH = r'''#!{python}
"""gh, faked over the JSON world in $FAKE_GH_WORLD; every call is logged."""
import io, json, os, sys, zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

args = sys.argv[1:]
if not os.environ.get("GH_TOKEN"):
    sys.exit("gh: not logged in (GH_TOKEN is not set)")
world_file = Path(os.environ["FAKE_GH_WORLD"])
world = json.loads(world_file.read_text())
store = Path(os.environ["FAKE_GH_ARTIFACTS"])
record = {"args": args}
for i, arg in enumerate(args):  # keep the bodies: the scripts delete their temp files
    if arg.startswith("body=@"):
        record["body"] = Path(arg[6:]).read_text(encoding="utf-8")
    if arg in ("--body-file", "--body"):
        record["body"] = args[i + 1] if arg == "--body" else Path(args[i + 1]).read_text()
with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as fh:
    fh.write(json.dumps(record) + "\n")


def save():
    world_file.write_text(json.dumps(world))


def artifacts():
    for meta in sorted(store.glob("*/meta.json")):
        yield json.loads(meta.read_text())


def fail(message):
    sys.exit(f"gh: {message} (HTTP 404)")


if args[0] == "api":
    method = args[args.index("--method") + 1] if "--method" in args else "GET"
    url = urlsplit(next(a for a in args if a.startswith("repos/")))
    query = parse_qs(url.query)
    parts = url.path.split("/")[3:]  # after repos/OWNER/NAME
    if parts[0] == "issues" and parts[-1] == "comments" and method == "GET":
        comments = world["comments"].get(parts[1], [])
        sys.stdout.write("".join(json.dumps([c]) for c in comments) or "[]")  # one per page
    elif parts[0] == "issues" and parts[-1] == "comments" and method == "POST":
        comment = {"id": world["next_id"], "user": {"login": "github-actions[bot]"},
                   "body": record["body"]}
        world["next_id"] += 1
        world["comments"].setdefault(parts[1], []).append(comment)
        save()
        print(json.dumps(comment))
    elif parts[:2] == ["issues", "comments"] and method == "PATCH":
        for comments in world["comments"].values():
            for comment in comments:
                if str(comment["id"]) == parts[2]:
                    comment["body"] = record["body"]
        save()
        print("{}")
    elif parts[0] == "commits" and parts[2:] == ["pulls"]:
        print(json.dumps(world["pulls"].get(parts[1], [])))
    elif parts[:2] == ["actions", "artifacts"] and len(parts) == 2:
        name = query["name"][0]
        found = [a for a in artifacts() if a["name"] == name]
        print(json.dumps({"total_count": len(found), "artifacts": found}))
    elif parts[:2] == ["actions", "artifacts"] and parts[3:] == ["zip"]:
        meta = next((a for a in artifacts() if str(a["id"]) == parts[2]), None)
        if meta is None:
            fail("artifact not found")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for path in sorted((store / str(meta["id"]) / "files").iterdir()):
                zf.write(path, path.name)
        sys.stdout.buffer.write(buffer.getvalue())
    elif parts[:2] == ["actions", "runs"]:
        run = world["runs"].get(parts[2])
        if run is None:
            fail("run not found")
        print(json.dumps(run))
    else:
        fail(f"no such route in the fake: {method} {url.path}")
elif args[:2] == ["issue", "list"]:
    print(json.dumps([i for i in world["issues"] if i["state"] == "open"]))
elif args[:2] == ["issue", "create"]:
    number = world["next_id"]
    world["next_id"] += 1
    title = args[args.index("--title") + 1]
    world["issues"].append({"number": number, "title": title, "body": record["body"],
                            "state": "open"})
    save()
    print(f"https://github.com/{os.environ.get('GH_REPO')}/issues/{number}")
elif args[:2] in (["issue", "edit"], ["issue", "close"]):
    for issue in world["issues"]:
        if str(issue["number"]) == args[2]:
            if args[1] == "edit":
                issue["body"] = record["body"]
            else:
                issue["state"] = "closed"
    save()
elif args[:2] in (["issue", "comment"], ["label", "create"]):
    pass
else:
    sys.exit(f"gh: the fake does not know {args!r}")
'''

FAKE_PYTHON = r'''#!{python}
"""The runner's python: this interpreter, except `python -m pip install DIR`."""
import json, os, stat, sys

args = sys.argv[1:]
if args[:3] == ["-m", "pip", "install"]:
    project = os.path.abspath(args[-1])
    shim = os.path.join({bin!r}, "blocklist")
    with open(shim, "w", encoding="utf-8") as fh:
        fh.write(
            "#!{python}\n"
            "import json, os, sys\n"
            f"sys.path.insert(0, {{project!r}})\n"
            "import reconciler\n"
            "from reconciler.cli import entry\n"
            f"with open({tool_log!r}, 'a', encoding='utf-8') as fh:\n"
            "    fh.write(json.dumps({{'argv': sys.argv[1:], 'cwd': os.getcwd(),"
            " 'package': reconciler.__file__, 'env': sorted(os.environ)}}) + '\\n')\n"
            "sys.exit(entry())\n"
        )
    os.chmod(shim, os.stat(shim).st_mode | stat.S_IXUSR)
    with open({pip_log!r}, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({{"project": project, "args": args,
                              "PIP_CONSTRAINT": os.environ.get("PIP_CONSTRAINT")}}) + "\n")
    sys.exit(0)
os.execv({python!r}, [{python!r}, *args])
'''


# -- the runner ------------------------------------------------------------------------------


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
    environment: str | None = None
    skipped: bool = False
    run_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.skipped and all(s.outcome != "failure" for s in self.steps)

    def step(self, name: str) -> StepResult:
        """A step by name; a step of a composite action is "OUTER / INNER"."""
        found = [s for s in self.steps if s.name == name]
        assert found, f"no step {name!r} in {[s.name for s in self.steps]}"
        return found[0]

    def failures(self) -> list[tuple[str, str, str]]:
        return [
            (s.name, s.stdout[-1500:], s.stderr[-1500:])
            for s in self.steps
            if s.outcome == "failure"
        ]


class Runner:
    """Runs one job of a workflow in a workspace directory, as a GitHub runner would."""

    def __init__(self, workspace: Path, tmp: Path) -> None:
        self.workspace = workspace
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.runner_temp = tmp / "runner-temp"
        self.summary_file = tmp / "summary.md"
        self.gh_log = tmp / "gh.jsonl"
        self.tool_log = tmp / "tool.jsonl"
        self.pip_log = tmp / "pip.jsonl"
        self.world_file = tmp / "gh-world.json"
        self.artifacts = tmp / "artifacts"
        self.artifacts.mkdir()
        self.world: dict[str, Any] = {
            "comments": {},
            "issues": [],
            "pulls": {},
            "runs": {},
            "next_id": 1000,
        }
        self.save_world()
        self.next_run = 5000
        python = sys.executable
        values = {
            "python": python,
            "bin": str(self.bin),
            "tool_log": str(self.tool_log),
            "pip_log": str(self.pip_log),
        }
        for name, source in (
            ("gh", FAKE_GH.replace("{python}", python)),
            ("python", FAKE_PYTHON.format(**values)),
            ("python3", FAKE_PYTHON.format(**values)),
        ):
            path = self.bin / name
            path.write_text(source)
            path.chmod(0o755)
        # nothing of this interpreter's bin directory: the tool must come from the install
        self.path = os.pathsep.join([str(self.bin), "/usr/local/bin", "/usr/bin", "/bin"])

    # -- the world of the fake gh ------------------------------------------------------------

    def save_world(self) -> None:
        self.world_file.write_text(json.dumps(self.world))

    def _load_world(self) -> None:
        self.world = json.loads(self.world_file.read_text())

    def merge(self, number: int, head_sha: str, merge_sha: str) -> None:
        """Pull request ``number`` (head ``head_sha``) is merged as ``merge_sha``."""
        self.world["pulls"][merge_sha] = [
            {
                "number": number,
                "state": "closed",
                "merged_at": "2026-11-23T10:00:00Z",
                "merge_commit_sha": merge_sha,
                "head": {"sha": head_sha},
                "base": {"ref": DEFAULT_BRANCH},
            }
        ]
        self.save_world()

    def comments(self, number: int = 42) -> list[dict[str, Any]]:
        return list(self.world["comments"].get(str(number), []))

    def stored_artifacts(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.artifacts.glob("*/meta.json"))]

    def artifact_files(self, name: str) -> Path:
        """The files of the newest artifact called ``name``."""
        (newest, *_) = sorted(
            (a for a in self.stored_artifacts() if a["name"] == name),
            key=lambda a: a["created_at"],
            reverse=True,
        )
        return self.artifacts / str(newest["id"]) / "files"

    def gh_calls(self) -> list[dict[str, Any]]:
        if not self.gh_log.exists():
            return []
        return [json.loads(line) for line in self.gh_log.read_text().splitlines()]

    def tool_calls(self) -> list[dict[str, Any]]:
        if not self.tool_log.exists():
            return []
        return [json.loads(line) for line in self.tool_log.read_text().splitlines()]

    def installs(self) -> list[dict[str, Any]]:
        if not self.pip_log.exists():
            return []
        return [json.loads(line) for line in self.pip_log.read_text().splitlines()]

    def forget_calls(self) -> None:
        for log in (self.gh_log, self.tool_log, self.pip_log):
            log.unlink(missing_ok=True)

    # -- events ------------------------------------------------------------------------------

    def pull_request(
        self,
        head_sha: str,
        *,
        number: int = 42,
        fork: bool = False,
        workflow: str = "pull-request.yml",
        **kw: Any,
    ) -> JobRun:
        head_repo = "mallory/blocklists" if fork else REPOSITORY
        payload = {
            "number": number,
            "pull_request": {
                "number": number,
                "head": {"sha": head_sha, "ref": "change", "repo": {"full_name": head_repo}},
                "base": {"sha": BASE_SHA, "ref": DEFAULT_BRANCH},
            },
        }
        return self.run(
            workflow,
            event_name="pull_request_target",
            payload=payload,
            sha=BASE_SHA,
            ref=f"refs/heads/{DEFAULT_BRANCH}",
            **kw,
        )

    def push(self, sha: str, *, workflow: str = "apply.yml", **kw: Any) -> JobRun:
        payload = {"after": sha, "ref": f"refs/heads/{DEFAULT_BRANCH}"}
        return self.run(
            workflow, event_name="push", payload=payload, sha=sha, ref=payload["ref"], **kw
        )

    def dispatch(
        self,
        workflow: str,
        inputs: dict[str, Any] | None = None,
        *,
        sha: str = "d" * 40,
        branch: str = DEFAULT_BRANCH,
        **kw: Any,
    ) -> JobRun:
        return self.run(
            workflow,
            event_name="workflow_dispatch",
            payload={"inputs": inputs or {}, "ref": f"refs/heads/{branch}"},
            sha=sha,
            ref=f"refs/heads/{branch}",
            inputs=inputs or {},
            **kw,
        )

    # -- running a job -----------------------------------------------------------------------

    def run(
        self,
        workflow: str | Path,
        *,
        event_name: str,
        payload: dict[str, Any],
        sha: str,
        ref: str,
        secrets: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        inputs: dict[str, Any] | None = None,
        matrix: dict[str, Any] | None = None,
        actor: str = "alice",
        env: dict[str, str] | None = None,
    ) -> JobRun:
        path = Path(workflow)
        if not path.is_absolute():
            path = self.workspace / ".github" / "workflows" / path
        wf = load_yaml(path)
        (job,) = wf["jobs"].values()
        self.next_run += 1
        run_id = str(self.next_run)
        self.world["runs"][run_id] = {"id": int(run_id), "event": event_name, "head_sha": sha}
        self.save_world()
        (self.bin / "blocklist").unlink(missing_ok=True)  # each job installs its own
        shutil.rmtree(self.runner_temp, ignore_errors=True)
        self.runner_temp.mkdir()
        self.summary_file.write_text("")
        payload = {
            **payload,
            "repository": {"full_name": REPOSITORY, "default_branch": DEFAULT_BRANCH},
        }
        if matrix is None:
            axes = (job.get("strategy") or {}).get("matrix") or {}
            matrix = {k: v[0] for k, v in axes.items() if isinstance(v, list)}
        ctx: dict[str, Any] = {
            "github": {
                "token": "ghs_fake",
                "repository": REPOSITORY,
                "server_url": "https://github.com",
                "run_id": run_id,
                "run_attempt": "1",
                "sha": sha,
                "ref": ref,
                "event_name": event_name,
                "actor": actor,
                "workspace": str(self.workspace),
                "event": payload,
            },
            "secrets": secrets or {},  # an unset secret reads as ""
            "vars": variables or {},
            "inputs": inputs or {},
            "matrix": matrix,
            "runner": {"temp": str(self.runner_temp), "os": "Linux"},
            "steps": {},
        }
        environment = job.get("environment")
        if isinstance(environment, dict):
            environment = environment.get("name")
        environment = interpolate(environment, ctx, False) if environment else None
        if "if" in job and not condition(job["if"], ctx, False):
            return JobRun([], "", environment, skipped=True, run_id=run_id)
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "BLOCKLIST_", "GH_", "FAKE_GH", "RUNNER_"))
            and k not in ("PYTHONPATH", "VIRTUAL_ENV", "CI", "NO_COLOR")
        }
        base.update(
            PATH=self.path,
            CI="true",
            GITHUB_ACTIONS="true",
            GITHUB_STEP_SUMMARY=str(self.summary_file),
            GITHUB_REPOSITORY=REPOSITORY,
            GITHUB_SHA=sha,
            GITHUB_REF=ref,
            GITHUB_EVENT_NAME=event_name,
            GITHUB_ACTOR=actor,
            GITHUB_RUN_ID=run_id,
            GITHUB_WORKSPACE=str(self.workspace),
            RUNNER_TEMP=str(self.runner_temp),
            FAKE_GH_LOG=str(self.gh_log),
            FAKE_GH_WORLD=str(self.world_file),
            FAKE_GH_ARTIFACTS=str(self.artifacts),
            **(env or {}),
        )
        for key, value in (wf.get("env") or {}).items():
            base[key] = interpolate(value, ctx, False)
        for key, value in (job.get("env") or {}).items():
            base[key] = interpolate(value, ctx, False)
        results: list[StepResult] = []
        self._failed = False
        self._steps(job["steps"], ctx, base, results, prefix="")
        self._load_world()
        return JobRun(results, self.summary_file.read_text(), environment, run_id=run_id)

    def _steps(
        self,
        steps: list[dict[str, Any]],
        ctx: dict[str, Any],
        env: dict[str, str],
        results: list[StepResult],
        prefix: str,
    ) -> None:
        for i, step in enumerate(steps):
            name = prefix + (step.get("name") or step.get("uses") or f"step {i}")
            if not condition(step.get("if"), ctx, self._failed):
                results.append(StepResult(name, "skipped"))
                self._record(ctx, step, "skipped", {})
                continue
            step_env = dict(env)
            for key, value in (step.get("env") or {}).items():
                step_env[key] = interpolate(value, ctx, self._failed)
            uses = step.get("uses")
            if uses and uses.startswith("./"):
                inner: list[StepResult] = []
                outcome, outputs = self._composite(step, ctx, step_env, inner, name)
                result = StepResult(name, outcome, outputs=outputs)
                results.append(result)
                results.extend(inner)
            elif uses:
                outcome = self._action(uses, step, ctx)
                result = StepResult(name, outcome)
                results.append(result)
            else:
                result = self._shell(step, ctx, step_env, name)
                results.append(result)
            self._failed = self._failed or result.outcome == "failure"
            self._record(ctx, step, result.outcome, result.outputs)

    def _shell(
        self, step: dict[str, Any], ctx: dict[str, Any], env: dict[str, str], name: str
    ) -> StepResult:
        output_file = self.tmp / "github-output"
        output_file.write_text("")
        env["GITHUB_OUTPUT"] = str(output_file)
        cwd = self.workspace / interpolate(step.get("working-directory", "."), ctx, self._failed)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outputs = dict(
            line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line
        )
        outcome = "success" if proc.returncode == 0 else "failure"
        return StepResult(name, outcome, proc.stdout, proc.stderr, outputs)

    def _composite(
        self,
        step: dict[str, Any],
        ctx: dict[str, Any],
        env: dict[str, str],
        results: list[StepResult],
        name: str,
    ) -> tuple[str, dict[str, str]]:
        """Expand a local composite action: its steps, with ``inputs`` from ``with:``
        over the action's defaults, then its outputs."""
        action_dir = (self.workspace / step["uses"]).resolve()
        action = load_yaml(action_dir / "action.yml")
        assert action["runs"]["using"] == "composite"
        declared = action.get("inputs") or {}
        given = step.get("with") or {}
        unknown = set(given) - set(declared)
        assert not unknown, f"{step['uses']} has no input {sorted(unknown)}"
        github = {**ctx["github"], "action_path": str(action_dir)}
        inputs: dict[str, str] = {}
        for key, spec in declared.items():
            if key in given:
                inputs[key] = interpolate(given[key], ctx, self._failed)
            else:
                assert not spec.get("required"), f"input {key} is required"
                inputs[key] = interpolate(spec.get("default", ""), {**ctx, "github": github}, False)
        inner = {"github": github, "inputs": inputs, "runner": ctx["runner"], "steps": {}}
        inner_env = dict(env, GITHUB_ACTION_PATH=str(action_dir))
        failed_before = self._failed
        self._steps(action["runs"]["steps"], inner, inner_env, results, prefix=f"{name} / ")
        outcome = "failure" if any(r.outcome == "failure" for r in results) else "success"
        self._failed = failed_before  # the outer step's outcome sets it
        outputs = {
            key: interpolate(spec["value"], inner, False)
            for key, spec in (action.get("outputs") or {}).items()
        }
        return outcome, outputs

    def _action(self, uses: str, step: dict[str, Any], ctx: dict[str, Any]) -> str:
        action = uses.split("@")[0]
        if action in ("actions/checkout", "actions/setup-python"):
            return "success"  # the test laid the checkouts out; the Python is this one
        if action == "actions/upload-artifact":
            return self.upload(
                {k: interpolate(v, ctx, self._failed) for k, v in step["with"].items()}, ctx
            )
        raise AssertionError(f"the local runner cannot run {uses}")

    def upload(self, given: dict[str, str], ctx: dict[str, Any]) -> str:
        paths = [
            Path(p.strip()) if Path(p.strip()).is_absolute() else self.workspace / p.strip()
            for p in given["path"].splitlines()
            if p.strip()
        ]
        files = [p for p in paths if p.is_file()]
        if not files:
            return "failure" if given.get("if-no-files-found") == "error" else "success"
        run_id = ctx["github"]["run_id"]
        for meta in self.stored_artifacts():
            if meta["name"] == given["name"] and str(meta["run_id"]) == run_id:
                if given.get("overwrite") != "true":
                    return "failure"  # v4: an artifact's name is taken once per run
                shutil.rmtree(self.artifacts / str(meta["id"]))
        self._load_world()  # the fake gh may have changed it since
        self.world["next_id"] += 1
        ident = self.world["next_id"]
        self.save_world()
        where = self.artifacts / str(ident)
        (where / "files").mkdir(parents=True)
        for f in files:
            shutil.copy2(f, where / "files" / f.name)
        created = dt.datetime(2026, 11, 23, tzinfo=dt.UTC) + dt.timedelta(seconds=ident)
        meta = {
            "id": ident,
            "name": given["name"],
            "expired": False,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "run_id": run_id,
            "workflow_run": {"id": int(run_id), "head_sha": ctx["github"]["sha"]},
        }
        (where / "meta.json").write_text(json.dumps(meta))
        return "success"

    @staticmethod
    def _record(ctx: dict[str, Any], step: dict[str, Any], outcome: str, outputs: dict) -> None:
        if "id" in step:
            ctx["steps"][step["id"]] = {
                "outcome": outcome,
                "conclusion": outcome,
                "outputs": outputs,
            }

    _failed = False
