"""The shape of the tree (ARCHITECTURE.md): imports flow one way, provider types
are known only to their own modules and the registry, and a new provider type
needs nothing but its adapter and its emulator."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from click.testing import CliRunner

from reconciler import providers, sandbox
from reconciler.cli import main
from reconciler.domain import Batch, BatchResult, LiveEntry, Outcome, Target
from reconciler.providers.base import Capabilities, ProviderAdapter
from reconciler.sandbox.base import Emulator

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"
TYPES = ("ozonetel", "wooxy", "phonely", "kaleyra", "lox24")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``reconciler`` module ``path`` imports, at any level (a function's lazy
    import is a dependency too)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("reconciler"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("reconciler"):
                continue
            for alias in node.names:  # ``from . import x`` may name a module
                candidate = f"{target}.{alias.name}"
                out.add(candidate if candidate in MODULES else target)
    return {m for m in out if m in MODULES and m != here}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_no_import_cycle_inside_the_package() -> None:
    graph = {name: imports_of(path) for name, path in MODULES.items()}
    # a package's __init__ runs before any of its modules: that edge is implicit
    seen: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> None:
        if node in stack:
            cycle = stack[stack.index(node) :] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for name in sorted(graph):
        visit(name)


def test_provider_types_are_named_only_in_their_own_modules() -> None:
    allowed = {f"reconciler/providers/{t}.py" for t in TYPES} | {
        f"reconciler/sandbox/{t}.py" for t in TYPES
    }
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        text = path.read_text()
        for t in TYPES:
            if rel in (f"reconciler/providers/{t}.py", f"reconciler/sandbox/{t}.py"):
                continue
            for m in re.finditer(rf"\b{t}\b", text, re.IGNORECASE):
                line = text.count("\n", 0, m.start()) + 1
                offenders.append(f"{rel}:{line}: {t}")
    assert not offenders and allowed, offenders


def test_the_cli_only_parses_options() -> None:
    """No HTTP, no file formats, no state backend and no diff in cli.py: it calls an
    operation and a view."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
    forbidden = {
        "httpx",
        "yaml",
        "sqlite3",
        "psycopg",
        ".plan",
        ".desired.loader",
        ".connections",
        ".state",
        ".providers.base",
        ".apply",
        ".numbers",
    }
    assert not imported & forbidden, imported & forbidden


# -- a sixth provider type: an adapter module and an emulator module, nothing else --------


class ToyEmulator(Emulator):
    """A toy provider: GET/POST/DELETE /rooms/{room}/numbers, key in ``X-Key``."""

    type_name = "toy"
    credentials: ClassVar[dict[str, str]] = {"key": "toy-key"}

    def initial_state(self, seed: bool) -> dict[str, Any]:
        return {"rooms": {"blue": ["+14155550100"] if seed else []}}

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("X-Key") != self.accepted["key"]:
            self.auth_rejected(request)
            return httpx.Response(401, json={"error": "bad key"})
        room = request.url.path.split("/")[2]
        numbers = self.state["rooms"].setdefault(room, [])
        if request.method == "GET":
            return httpx.Response(200, json={"numbers": numbers})
        body = json.loads(request.content)
        for n in body["numbers"]:
            if request.method == "POST" and n not in numbers:
                numbers.append(n)
            elif request.method == "DELETE" and n in numbers:
                numbers.remove(n)
        return httpx.Response(200, json={"ok": body["numbers"]})


class ToyAdapter(ProviderAdapter):
    type_name = "toy"
    capabilities = Capabilities(
        can_list=True,
        can_add=True,
        can_remove=True,
        batch_limit=50,
        concurrency_limit=2,
        native_expiry=False,
        remove_by="number",
        remove_one_per_call=False,
        scope_fields=("room",),
        attribute_fields=(),
        credential_keys=("key",),
        default_base_url="https://toy.invalid",
        wire_format="E.164 with +",
    )

    async def _call(self, method: str, room: str, numbers: list[str] | None = None) -> Any:
        async def once() -> Any:
            body = None if numbers is None else {"numbers": numbers}
            resp = await self.request(
                method, f"/rooms/{room}/numbers", "toy", json_body=body,
                headers={"X-Key": self._credentials["key"]},
            )  # fmt: skip
            return self.json_of(resp, "toy")

        return await self.gated(once)

    async def refresh(self, target: Target) -> list[LiveEntry]:
        data = await self._call("GET", target.scope_value("room"))
        return [self.live_entry(n) for n in data["numbers"]]

    async def send(self, target: Target, batch: Batch) -> BatchResult:
        method = "DELETE" if batch.ops[0].kind == "remove" else "POST"
        data = await self._call(method, target.scope_value("room"), [o.number for o in batch.ops])
        return BatchResult(
            [Outcome(o, "done" if o.number in data["ok"] else "retryable") for o in batch.ops]
        )


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    providers.register(ToyAdapter)
    sandbox.register(ToyEmulator)
    monkeypatch.chdir(tmp_path)
    lists = tmp_path / "blocklists"
    lists.mkdir()
    (lists / "providers.yaml").write_text(
        "version: 1\nproviders:\n  toy:\n    type: toy\n    base_url: sandbox\n"
    )
    (lists / "toy.yaml").write_text(
        "version: 1\nname: toy-list\ntargets: [{provider: toy, room: blue}]\n"
        'entries: ["+14155550101", "+14155550102"]\n'
    )
    try:
        yield lists
    finally:
        providers.unregister("toy")
        sandbox.unregister("toy")


def test_a_new_provider_type_needs_only_its_adapter_and_emulator(toy: Path) -> None:
    run = CliRunner().invoke
    plan = run(main, ["plan", "--format", "json"])
    assert plan.exit_code == 0, plan.output
    doc = json.loads(plan.stdout)
    assert doc["targets"][0]["name"] == "toy/blue"
    assert doc["summary"]["add"] == 2 and doc["summary"]["unmanaged"] == 1
    assert run(main, ["apply", "--auto-approve"]).exit_code == 0
    assert run(main, ["plan", "--detailed-exitcode"]).exit_code == 0
    schema = run(main, ["schema", "--out", "schemas"])
    assert schema.exit_code == 0
    listed = json.loads((toy.parent / "schemas" / "blocklist.schema.json").read_text())
    assert "room" in listed["$defs"]["TargetSpec"]["properties"]
    wrong = toy / "toy.yaml"
    wrong.write_text(wrong.read_text().replace("room: blue", "rooom: blue"))
    invalid = run(main, ["validate"])
    assert invalid.exit_code == 1 and "unknown key 'rooom'" in invalid.stderr
