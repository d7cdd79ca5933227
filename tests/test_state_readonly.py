"""Plan needs no write access to state (issue 21): with ``state.read_dsn`` a
SELECT-only PostgreSQL role serves plan, audit, why and the read-only state
commands, while apply, given that role as its ``dsn``, refuses at once and plainly.
Against a real PostgreSQL server (tests/pgserver.py)."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest
from click.testing import CliRunner
from pgserver import create_database

from reconciler.cli import main

AT = "2026-11-23T00:00:00Z"
_numbers = itertools.count()


def run(*args: str, env: dict[str, str]):
    result = CliRunner().invoke(main, list(args), env=env)
    assert "Traceback" not in result.output + result.stderr, result.stderr
    return result


@pytest.fixture
def dsns(pg_admin_dsn: str) -> tuple[str, str]:
    """(read-write DSN, SELECT-only DSN) of a fresh database."""
    name = f"readonly_{os.getpid()}_{next(_numbers)}"
    owner_dsn = create_database(pg_admin_dsn, name)
    reader = f"reader_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {reader} LOGIN")
        conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {reader}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {reader}")
        # the tables apply creates later are readable by the reader, and only that
        conn.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {reader}"
        )
    return owner_dsn, psycopg.conninfo.make_conninfo(owner_dsn, user=reader)


def use_postgres(project: Path) -> None:
    providers = project / "blocklists" / "providers.yaml"
    text = providers.read_text().replace(
        "state:\n  backend: sqlite\n  path: .blocklist/state.db",
        "state:\n  backend: postgres\n  dsn: {env: STATE_DSN}\n  read_dsn: {env: STATE_READ_DSN}",
    )
    providers.write_text(text)


def test_plan_and_audit_work_with_a_select_only_role_and_apply_refuses_it(
    project: Path, dsns: tuple[str, str]
) -> None:
    owner, reader = dsns
    use_postgres(project)
    env = {"STATE_DSN": owner, "STATE_READ_DSN": reader}
    # the first apply (read-write) creates the schema and records what it applied
    applied = run("apply", "--auto-approve", "--at", AT, env=env)
    assert applied.exit_code == 0, applied.stderr

    # plan, audit and the read-only state commands run on the reader's DSN alone: the
    # read-write one is not even set, and a write would be refused by the server
    read_env = {"STATE_DSN": "", "STATE_READ_DSN": reader}
    plan = run("plan", "--detailed-exitcode", "--at", AT, env=read_env)
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    audit = run("audit", "--format", "json", "--at", AT, env=read_env)
    assert audit.exit_code == 0, audit.stderr
    assert json.loads(audit.stdout)["clean"] is True
    listed = run("state", "list", "--format", "json", env=read_env)
    assert listed.exit_code == 0 and json.loads(listed.stdout)["targets"]["kaleyra/sms"]

    # the reader as apply's DSN: refused before any lock is taken or request sent
    refused = run(
        "apply", "--auto-approve", "--at", AT, env={"STATE_DSN": reader, "STATE_READ_DSN": reader}
    )
    assert refused.exit_code == 1
    assert "cannot write the state" in refused.stderr and "state.read_dsn" in refused.stderr
    assert refused.stderr.count("Error:") == 1
    with psycopg.connect(owner) as conn:
        assert conn.execute("SELECT count(*) FROM blocklist_lock").fetchone() == (0,)


def test_a_read_only_dsn_never_creates_the_schema(project: Path, dsns: tuple[str, str]) -> None:
    owner, reader = dsns
    use_postgres(project)
    result = run("plan", "--at", AT, env={"STATE_DSN": "", "STATE_READ_DSN": reader})
    assert result.exit_code == 1 and "run an apply first" in result.stderr
    with psycopg.connect(owner) as conn:
        assert conn.execute("SELECT to_regclass('blocklist_meta')").fetchone() == (None,)


def test_two_configurations_cannot_share_one_state(project: Path, dsns: tuple[str, str]) -> None:
    """One state per configuration: a second configuration pointed at the same
    database is refused, naming both."""
    owner, _ = dsns
    use_postgres(project)
    env = {"STATE_DSN": owner, "STATE_READ_DSN": owner}
    assert run("apply", "--auto-approve", "--at", AT, "--target", "kaleyra", env=env).exit_code == 0
    other = project / "other"
    (other).mkdir()
    import shutil

    shutil.copytree(project / "blocklists", other / "prod")
    result = run("plan", "-C", str(other / "prod"), "--at", AT, env=env)
    assert result.exit_code == 1
    assert "belongs to the configuration 'blocklists'" in result.stderr
    assert "'prod'" in result.stderr
