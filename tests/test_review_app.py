"""The review application's API and its guards, through FastAPI's test client (no browser)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from pipelines.cases.store import LedgerStore
from pipelines.review.app import ReviewSettings, create_app
from tests._cases_fixtures import ledger_url_fixture  # noqa: F401 - fixture
from tests._review_fixtures import HOSTILE_UNIT, make_reviewable


@pytest.fixture()
def reviewable(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_reviewable(tmp_path)


def _client(settings: ReviewSettings, host: str = "127.0.0.1") -> TestClient:
    return TestClient(create_app(settings), base_url=f"http://{host}:8765")


def test_page_queue_and_verdict(ledger_url: str, tmp_path: Path) -> None:
    reviewable = make_reviewable(tmp_path, ledger_url)  # GeoPackage and PostGIS alike
    s = ReviewSettings(ledger=reviewable.ledger, who="审核员")
    client = _client(s)
    page = client.get("/")
    assert page.status_code == 200
    assert f'<meta name="csrf" content="{s.csrf}">' in page.text
    csp = page.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    # no inline script and nothing from another host: every src/href is a local path
    assert not re.search(r"<script>(?!</script>)", page.text)
    assert all(u.startswith("/") for u in re.findall(r'(?:src|href)="([^"]+)"', page.text))
    assert client.get("/leaflet/leaflet.js").status_code == 200
    assert client.get("/static/review.js").status_code == 200

    q = client.get("/api/queue").json()
    assert {i["case_id"] for i in q["items"]} == set(reviewable.case_ids)
    assert [r["key"] for r in q["reasons"]] == ["false_detection", "permitted", "duplicate"]
    first = q["items"][0]
    detail = client.get(f"/api/case/{first['case_id']}").json()
    assert detail["version"] == first["version"] and detail["can_confirm"]
    assert detail["map"]["features"][0]["properties"]["kind"] == "case"

    headers = {"X-CSRF-Token": s.csrf}
    body = {"action": "confirm", "version": first["version"], "who": "审核员", "page": "/"}
    ok = client.post(f"/api/case/{first['case_id']}/verdict", json=body, headers=headers)
    assert ok.status_code == 200 and ok.json()["to_state"] == "stopped"
    # the same (now stale) version again: refused as a conflict, with who changed it
    again = client.post(f"/api/case/{first['case_id']}/verdict", json=body, headers=headers)
    assert again.status_code == 409 and "审核员" in again.json()["error"]
    # the queue to verify no longer holds it; status=all shows it confirmed
    left = {i["case_id"] for i in client.get("/api/queue").json()["items"]}
    assert first["case_id"] not in left
    every = client.get("/api/queue", params={"status": "all"}).json()["items"]
    assert {i["case_id"]: i["state"] for i in every}[first["case_id"]] == "stopped"
    assert client.get("/api/queue", params={"order": "sideways"}).status_code == 400


def test_filters_narrow_the_queue(reviewable) -> None:  # type: ignore[no-untyped-def]
    client = _client(ReviewSettings(ledger=reviewable.ledger))
    opts = client.get("/api/queue").json()["options"]
    assert [t[0] for t in opts["townships"]] == ["500104001", "500104002"]
    only = client.get("/api/queue", params={"township": "500104002"}).json()["items"]
    assert only and {i["township_code"] for i in only} == {"500104002"}
    assert client.get("/api/queue", params={"night": "2020-01-01"}).json()["items"] == []
    units = client.get("/api/queue", params={"unit": "V1"}).json()["items"]
    assert {i["unit_name"] for i in units} == {HOSTILE_UNIT}  # data, returned as data


def test_verdicts_need_the_csrf_token_and_json(reviewable) -> None:  # type: ignore[no-untyped-def]
    s = ReviewSettings(ledger=reviewable.ledger)
    client = _client(s)
    cid = reviewable.case_ids[0]
    version = client.get(f"/api/case/{cid}").json()["version"]
    body = {"action": "confirm", "version": version, "who": "x"}
    assert client.post(f"/api/case/{cid}/verdict", json=body).status_code == 403
    wrong = client.post(f"/api/case/{cid}/verdict", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    form = client.post(
        f"/api/case/{cid}/verdict", data={"action": "confirm"}, headers={"X-CSRF-Token": s.csrf}
    )
    assert form.status_code == 415
    evil = client.post(
        f"/api/case/{cid}/verdict",
        json=body,
        headers={"X-CSRF-Token": s.csrf, "Origin": "http://evil.example"},
    )
    assert evil.status_code == 403
    store = LedgerStore(reviewable.ledger)
    assert set(store.cases()["state"]) == {"discovered"}  # none of them got through
    store.dispose()


def test_host_and_access_token(reviewable) -> None:  # type: ignore[no-untyped-def]
    # a DNS-rebinding page reaches us under another Host name: refused
    rebinding = _client(ReviewSettings(ledger=reviewable.ledger), host="attacker.example")
    assert rebinding.get("/api/queue").status_code == 400
    token = "t0k3n-" + "x" * 20
    s = ReviewSettings(ledger=reviewable.ledger, token=token, hosts=("10.1.2.3",))
    client = _client(s, host="10.1.2.3")
    assert client.get("/").status_code == 401
    assert client.get("/api/queue").status_code == 401
    assert client.get("/api/queue", headers={"Authorization": "Bearer nope"}).status_code == 401
    first = client.get(f"/?token={token}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert client.get("/api/queue").status_code == 200  # the cookie carries it from now on


def test_chips_never_leave_the_evidence(reviewable, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = _client(ReviewSettings(ledger=reviewable.ledger))
    a, b, c = reviewable.case_ids[:3]
    ok = client.get(f"/api/chip/{a}/before")
    assert ok.status_code == 200 and ok.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/api/chip/{a}/secret").status_code == 404
    assert client.get("/api/chip/..%2F..%2Fetc%2Fpasswd/before").status_code == 404
    assert client.get("/static/..%2F..%2Fapp.py").status_code == 404
    # a ledger row pointing outside the run's evidence (hostile or stale): refused
    outside = tmp_path / "elsewhere" / "x.png"
    outside.parent.mkdir()
    shutil.copy(reviewable.run_dir / "evidence" / "F1-00000-before.png", outside)
    link = reviewable.run_dir / "evidence" / "link.png"
    link.symlink_to(outside)
    store = LedgerStore(reviewable.ledger)
    with store.write() as conn:
        for cid, path in ((a, "/etc/passwd"), (b, str(outside)), (c, str(link))):
            conn.execute(
                text("UPDATE cases SET evidence_before = :p WHERE case_id = :c"),
                {"p": path, "c": cid},
            )
    store.dispose()
    for cid in (a, b, c):
        got = client.get(f"/api/chip/{cid}/before")
        assert got.status_code in (403, 404) and got.content[:4] != b"\x89PNG", cid
