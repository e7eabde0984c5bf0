"""The review page in a real browser: Debian's chromium driven by Playwright, network blocked.

A reviewer confirms one lead and rejects another from the keyboard; the ledger records both; a
reload shows them; a second reviewer's verdict on a case the first one's page still shows is
refused; undo withdraws the last verdict; unit names full of markup stay text. The page's
screenshot is written under the test's tmp dir and the key-press → stored-verdict times printed.
A case whose answer comes after the reviewer has moved on does not replace the one shown.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.cases.store import LedgerStore
from pipelines.cases.verdicts import Verdict, case_versions, decide
from pipelines.review.app import ReviewSettings, create_app
from pipelines.review.server import ReviewServer
from tests._review_fixtures import HOSTILE_UNIT, make_reviewable

HOSTILE_NOTE = '"><img src=x onerror="window.__pwned=3"><script>window.__pwned=4</script>'


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


def _until(page: Any, expression: str, timeout_s: float = 40.0) -> None:
    """Wait until *expression* is true in the page (polled from here: the page's CSP forbids the
    string evaluation ``wait_for_function`` uses, and the test keeps the CSP on)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {expression}; msg: {page.inner_text('#msg')}"
            )
        time.sleep(0.02)


def _queue_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#queue li", "els => els.map(e => e.dataset.caseId)"))


def test_review_in_chromium(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from pipelines.maps.inputs import load_units, planning_units

    r = make_reviewable(tmp_path, n=4)
    units = planning_units(load_units(r.units), str(r.units))
    app = create_app(ReviewSettings(ledger=r.ledger, units=units, who=""))
    outside: list[str] = []
    dialogs: list[str] = []
    with ReviewServer(app) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        local = server.url.rstrip("/")

        def block(route: Any) -> None:  # the network beyond this machine does not exist here
            if route.request.url.startswith(local):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", block)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.url)
        page.wait_for_selector("#queue li")
        _until(page, "document.querySelector('#fields').rows.length > 5")
        assert page.evaluate("typeof window.L") == "object"  # the vendored Leaflet loaded
        assert page.locator("#map path.leaflet-interactive").count() >= 2  # case + unit
        _until(page, "document.getElementById('chip-after').naturalWidth === 64")  # served PNG
        queue = _queue_ids(page)
        assert sorted(queue) == sorted(r.case_ids)

        page.fill("#who", "王审核")
        page.keyboard.press("Escape")  # leave the input (the page blurs it)
        first, second = queue[0], queue[1]
        _until(page, f"document.body.dataset.caseId === '{first}'")
        page.keyboard.press("c")
        _until(page, "window.bwTimings.length === 1")
        assert "discovered → stopped" in page.inner_text("#msg")
        _until(page, f"document.body.dataset.caseId === '{second}'")  # moved on by itself
        page.fill("#note", HOSTILE_NOTE)  # the reviewer's note is data too
        page.keyboard.press("Escape")
        page.keyboard.press("x")
        assert page.is_visible("#reasons")
        page.keyboard.press("1")
        _until(page, "window.bwTimings.length === 2")
        timings = page.evaluate("window.bwTimings")

        store = LedgerStore(r.ledger)
        states = store.cases().set_index("case_id")
        assert states.loc[first, "state"] == "stopped"
        assert (states.loc[second, "state"], states.loc[second, "reject_reason"]) == (
            "rejected",
            "false_detection",
        )
        hist = store.history()
        mine = hist[hist["source"].str.startswith("review:")]
        assert list(zip(mine["case_id"], mine["to_state"], mine["who"], strict=True)) == [
            (first, "stopped", "王审核"),
            (second, "rejected", "王审核"),
        ]

        # reload: the two are no longer waiting, and status=all shows their new states
        page.reload()
        page.wait_for_selector("#queue li")
        assert set(_queue_ids(page)) == set(queue) - {first, second}
        page.select_option("select[name=status]", "all")
        _until(page, "document.querySelectorAll('#queue li').length === 4")
        tags = page.eval_on_selector_all(
            "#queue li",
            "els => els.map(e => [e.dataset.caseId, e.querySelector('.tag').textContent])",
        )
        assert dict(tags)[first] == "制止" and dict(tags)[second] == "已驳回"
        # a decided case cannot be confirmed again: the key says so instead of doing nothing
        page.click(f"#queue li[data-case-id='{second}']")
        _until(page, f"document.body.dataset.caseId === '{second}'")
        page.keyboard.press("c")
        _until(page, "document.getElementById('msg').textContent.includes('not from its state')")
        assert second in page.inner_text("#msg") and "已驳回" in page.inner_text("#msg")
        assert page.evaluate("window.bwTimings.length") == 0  # nothing was sent since the reload
        page.select_option("select[name=status]", "verify")
        _until(page, "document.querySelectorAll('#queue li').length === 2")

        # a second reviewer decides the case this page shows: this page's verdict is refused
        shown = page.eval_on_selector("#queue li.current", "e => e.dataset.caseId")
        _until(page, f"document.body.dataset.caseId === '{shown}'")
        decide(
            store,
            Verdict(shown, "reject", who="李审核", reason="duplicate"),
            version=case_versions(store)[shown],
        )
        page.keyboard.press("c")
        _until(page, "document.getElementById('msg').textContent.includes('changed')")
        assert "李审核" in page.inner_text("#msg")
        assert store.cases(case_ids=[shown])["state"].iloc[0] == "rejected"  # not overwritten

        # hostile unit names stayed text: no script ran, no injected element exists
        page.select_option("select[name=status]", "all")
        _until(page, "document.querySelectorAll('#queue li').length === 4")
        hostile = next(i for i, u in enumerate(states["unit_name"]) if u == HOSTILE_UNIT)
        page.click(f"#queue li[data-case-id='{states.index[hostile]}']")
        _until(
            page,
            "[...document.querySelectorAll('#fields td')].some(td => td.textContent.includes('<script>'))",
        )
        page.click(f"#queue li[data-case-id='{second}']")  # its history holds the note
        _until(
            page,
            "[...document.querySelectorAll('#history td')].some(td => td.textContent.includes('onerror'))",
        )
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img[src='x']").count() == 0
        assert dialogs == []

        # undo withdraws this page's last verdict (the rejection) through the ledger
        page.keyboard.press("u")
        _until(page, "document.getElementById('msg').textContent.includes('undone')")
        assert store.cases(case_ids=[second])["state"].iloc[0] == "discovered"
        _until(page, f"document.body.dataset.caseId === '{second}'")
        _until(page, "document.querySelector('#fields tr:nth-child(3) td').textContent === '发现'")
        assert HOSTILE_NOTE in list(store.history(second)["note"])  # stored as written
        assert store.history(second)["source"].iloc[-1].startswith("review-undo:")

        shot = tmp_path / "review.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        store.dispose()
        browser.close()
    assert outside == []  # nothing tried to leave the machine
    median = statistics.median(timings)
    print(
        f"\nreview: key press → stored verdict, median {median:.0f} ms over {len(timings)}; "
        f"screenshot {shot}"
    )
    assert median < 5000


def test_a_late_answer_for_a_case_left_behind_does_not_replace_the_one_shown(
    tmp_path: Path,
) -> None:
    """The reviewer moves on before a case has loaded: when its answer comes late, the page keeps
    showing (and deciding) the case chosen last, not the one left behind."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from pipelines.maps.inputs import load_units, planning_units

    r = make_reviewable(tmp_path, n=3)
    units = planning_units(load_units(r.units), str(r.units))
    app = create_app(ReviewSettings(ledger=r.ledger, units=units, who=""))
    held: list[Any] = []
    with ReviewServer(app) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        page = browser.new_page()
        local = server.url.rstrip("/")
        hold_next_case = {"on": True}

        def route(rt: Any) -> None:
            url = rt.request.url
            if not url.startswith(local):
                rt.abort()
            elif "/api/case/" in url and "/api/chip/" not in url and hold_next_case["on"]:
                hold_next_case["on"] = False
                held.append(rt)  # answered later, by hand
            else:
                rt.continue_()

        page.route("**/*", route)
        page.goto(server.url)
        page.wait_for_selector("#queue li")
        _until(page, "document.querySelectorAll('#queue li').length === 3")
        for _ in range(100):  # the first case's answer is on hold
            if held:
                break
            page.wait_for_timeout(20)
        assert len(held) == 1
        first, second = _queue_ids(page)[:2]
        assert first in held[0].request.url
        page.click(f"#queue li[data-case-id='{second}']")
        _until(page, f"document.body.dataset.caseId === '{second}'")
        held[0].continue_()  # now the left-behind case answers
        page.wait_for_timeout(500)
        assert page.evaluate("document.body.dataset.caseId") == second
        assert second in page.inner_text("#fields") and first not in page.inner_text("#fields")
        browser.close()
