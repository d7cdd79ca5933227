"""`blocklist sandbox` over real loopback HTTP: the seed documents' curl examples
against the printed base URLs, faults visible in the counters, clean Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

LINE = re.compile(r"^(\w+)\s+(http://127\.0\.0\.1:\d+)\s+credentials: (.*)$")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[dict[str, tuple[str, dict[str, str]]]]:
    (tmp_path / "blocklists").mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.cli",
            "sandbox",
            "--port",
            "0",
            "-C",
            str(tmp_path / "blocklists"),
            "--faults",
            "kaleyra:5xx=1.0,seed=3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served: dict[str, tuple[str, dict[str, str]]] = {}
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while len(served) < 5 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = LINE.match(line.strip())
        if m:
            creds = dict(kv.split("=", 1) for kv in m.group(3).split(", "))
            served[m.group(1)] = (m.group(2), creds)
    assert set(served) == {"ozonetel", "wooxy", "phonely", "kaleyra", "lox24"}, proc.stderr
    try:
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Stopped." in out and "Traceback" not in err


def test_seed_examples_get_the_documented_answers(sandbox) -> None:
    # Ozonetel (seed 000): generateToken, then createBlockNumber with the token
    url, c = sandbox["ozonetel"]
    token = httpx.post(
        f"{url}/ca_apis/CAToken/generateToken",
        headers={"apiKey": c["api_key"]},
        json={"userName": c["username"]},
    ).json()["token"]
    reply = httpx.post(
        f"{url}/ca_apis/createBlockNumber",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "userName": c["username"],
            "name": "seed-group",
            "description": "from the seed",
            "blockNumbers": "9876543210",
            "expiryDate": "2030-01-01 00:00:00",
        },
    ).json()
    assert reply["status"] == "success" and reply["message"] == "created"
    assert reply["output"]["succes"] == ["+919876543210"]
    bad = httpx.post(
        f"{url}/ca_apis/createBlockNumber",
        headers={"Authorization": "Bearer x"},
        json={"userName": c["username"]},
    ).json()
    assert bad == {"status": "error", "message": "Authentication failed"}

    # Wooxy (seed 001): add, and the documented 100-record error
    url, c = sandbox["wooxy"]
    h = {"Access-Token": c["access_token"]}
    ok = httpx.post(
        f"{url}/v3/phone-blacklist/add",
        headers=h,
        json={"records": [{"phoneNumber": "+15555555", "rejectType": "invalid"}]},
    )
    assert ok.json() == {"result": True}
    records = [{"phoneNumber": f"+1555555{i:04d}", "rejectType": "invalid"} for i in range(101)]
    big = httpx.post(f"{url}/v3/phone-blacklist/add", headers=h, json={"records": records})
    assert big.json() == {
        "result": False,
        "errors": ["Maximum count of records per transaction is 100, current 101"],
    }
    denied = httpx.post(
        f"{url}/v3/phone-blacklist/add", headers={"Access-Token": "nope"}, json={"records": []}
    )
    assert denied.json() == {"result": False, "errors": ["Invalid authorization token!"]}

    # Phonely (seed 002): list an agent's block list
    url, c = sandbox["phonely"]
    listed = httpx.get(
        f"{url}/api/agent-block-list",
        headers={"X-Authorization": c["api_key"]},
        params={"uid": c["uid"], "agentId": "support-bot"},
    )
    assert listed.json() == {"blockList": ["+14155550142", "+919876543210"]}
    assert (
        httpx.get(f"{url}/api/agent-block-list", headers={"X-Authorization": "bad"}).status_code
        == 401
    )

    # LOX24 (seed 004): create phones by the batch
    url, c = sandbox["lox24"]
    h = {"X-LOX24-AUTH-TOKEN": c["token"], "Accept": "application/ld+json"}
    made = httpx.post(
        f"{url}/groups/7116/phones/batch",
        headers=h,
        json=[{"phone": "+93701234567", "a": "Mr. ", "b": "Smith"}],
    )
    assert made.status_code == 201
    assert made.json()["hydra:member"][0]["status"] == 201
    assert len(made.headers["X-LOX24-REQUEST-ID"]) == 32


def test_faults_show_in_the_counters(sandbox) -> None:
    # Kaleyra (seed 003) was started with 5xx=1.0: the documented WA500 body every time
    url, c = sandbox["kaleyra"]
    reply = httpx.get(
        f"{url}/v1/{c['sid']}/contacts/blocklisted?channel=sms", headers={"api-key": c["api_key"]}
    )
    assert reply.status_code == 500 and reply.json()["code"] == "WA500"
    counters = httpx.get(f"{url}/__sandbox/counters").json()
    assert counters["faults"] == {"5xx": 1}


def test_same_seed_same_faults(tmp_path) -> None:
    from reconciler.sandbox import emulator_class

    def run() -> list[int]:
        emu = emulator_class("phonely")(faults="5xx=0.3,429=0.1,retry_after=0,seed=11")
        from reconciler.sandbox.base import EmulatorTransport

        with httpx.Client(transport=EmulatorTransport(emu), base_url="http://sandbox") as client:
            return [
                client.get(
                    "/api/agent-block-list",
                    headers={"X-Authorization": "sandbox-phonely-key"},
                    params={"uid": "sandbox-uid", "agentId": "a"},
                ).status_code
                for _ in range(40)
            ]

    first, second = run(), run()
    assert first == second and 500 in first and 200 in first


def test_reset_reseeds(tmp_path) -> None:
    root = tmp_path / "blocklists"
    root.mkdir()
    (root / ".blocklist" / "sandbox").mkdir(parents=True)
    (root / ".blocklist" / "sandbox" / "kaleyra.json").write_text("{}")
    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "sandbox", "--reset", "-C", str(root)],
        capture_output=True,
        text=True,
        env=os.environ,
        check=True,
    )
    assert "reset" in out.stdout
    assert not (root / ".blocklist" / "sandbox" / "kaleyra.json").exists()
