"""``buildwatch review`` as a user starts it: one command, it prints its address, it serves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests._review_fixtures import make_reviewable

REPO = Path(__file__).resolve().parents[1]
BW = [sys.executable, "-m", "pipelines.cli"]


def test_review_starts_prints_its_address_and_serves(tmp_path: Path) -> None:
    r = make_reviewable(tmp_path)
    proc = subprocess.Popen(
        [*BW, "review", "--ledger", r.ledger, "--units", str(r.units), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        found = re.match(r"buildwatch review: (http://127\.0\.0\.1:\d+/)$", line.strip())
        assert found, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        url = found.group(1)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "api/queue", timeout=5) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert all(cid in body for cid in r.case_ids)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_review_refuses_other_addresses_without_a_token(tmp_path: Path) -> None:
    r = make_reviewable(tmp_path)
    done = subprocess.run(
        [*BW, "review", "--ledger", r.ledger, "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "BUILDWATCH_REVIEW_TOKEN"},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: review: --host 0.0.0.0 lets other machines reach the ledger; give an access "
        "token with --token (at least 16 characters) or keep the default 127.0.0.1"
    ]
    missing = subprocess.run(
        [*BW, "review", "--ledger", str(tmp_path / "none.gpkg"), "--port", "0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert missing.returncode == 6 and missing.stderr.startswith("error: no ledger at")
