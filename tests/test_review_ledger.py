"""Review verdicts through the ledger's public functions, on GeoPackage and PostGIS."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo.errors import LedgerError, TransitionError
from pipelines.cases.feedback import label_cases
from pipelines.cases.imports import Update, apply_updates
from pipelines.cases.store import LedgerStore
from pipelines.cases.verdicts import ConflictError, Verdict, case_versions, decide, undo
from tests._cases_fixtures import ledger_url_fixture  # noqa: F401 - fixture
from tests._review_fixtures import make_reviewable


def test_confirm_reject_undo_and_conflict(ledger_url: str, tmp_path: Path) -> None:
    r = make_reviewable(tmp_path, ledger_url)
    store = LedgerStore(r.ledger)
    a, b, c = r.case_ids[:3]
    v = case_versions(store)

    done = decide(
        store, Verdict(a, "confirm", who="王审核", page="/?night=2024-05-01"), version=v[a]
    )
    assert (done.from_state, done.to_state) == ("discovered", "stopped")
    rej = decide(
        store,
        Verdict(b, "reject", who="王审核", reason="false_detection", note="阴影", page="/"),
        version=v[b],
    )
    assert rej.to_state == "rejected"
    cases = store.cases().set_index("case_id")
    assert cases.loc[a, "state"] == "stopped"
    assert (cases.loc[b, "state"], cases.loc[b, "reject_reason"]) == ("rejected", "false_detection")
    hist = store.history()
    last = hist[hist["case_id"] == a].iloc[-1]
    assert (last["who"], last["source"], last["from_state"], last["to_state"]) == (
        "王审核",
        "review:/?night=2024-05-01",
        "discovered",
        "stopped",
    )
    assert hist[hist["case_id"] == b].iloc[-1]["note"] == "阴影"

    # the training labels see the verdicts exactly as they see an import's
    labels = label_cases(store.cases()).set_index("case_id")["label"]
    assert labels.to_dict() == {a: "confirmed", b: "rejected"}

    # a second reviewer on a stale page: refused, nothing written
    n_hist = len(store.history())
    with pytest.raises(ConflictError, match=rf"case {b} was changed by 王审核"):
        decide(store, Verdict(b, "confirm", who="李审核"), version=v[b])
    with pytest.raises(ConflictError):
        decide(store, Verdict(a, "reject", who="李审核", reason="duplicate"), version=v[a])
    assert len(store.history()) == n_hist
    assert store.cases(case_ids=[a])["state"].iloc[0] == "stopped"

    # undo walks the one edge back and keeps both rows
    back = undo(store, b, who="王审核", version=rej.version, page="/")
    assert (back.from_state, back.to_state) == ("rejected", "discovered")
    after = store.cases(case_ids=[b]).iloc[0]
    assert (after["state"], after["reject_reason"]) == ("discovered", "")
    rows = store.history(b)
    assert list(rows["source"].str.split(":").str[0])[-2:] == ["review", "review-undo"]
    # an undo is not itself undone, and a stale version is refused
    with pytest.raises(LedgerError, match="not a review verdict"):
        undo(store, b, who="王审核", version=back.version)
    with pytest.raises(ConflictError):
        undo(store, a, who="王审核", version=v[a])
    # an officer's import after the verdict: the review verdict can no longer be undone
    apply_updates(store, [Update(a, "removed", "镇干部", "2024-05-03")], source="import:t.csv")
    with pytest.raises(LedgerError, match="import:t.csv"):
        undo(store, a, who="王审核", version=case_versions(store)[a])
    # confirm is for unverified cases only
    decide(store, Verdict(c, "confirm", who="x"), version=case_versions(store)[c])
    with pytest.raises(LedgerError, match="first state"):
        decide(store, Verdict(c, "confirm", who="x"), version=case_versions(store)[c])
    store.dispose()


def test_bad_verdicts_are_refused_with_the_value(tmp_path: Path) -> None:
    r = make_reviewable(tmp_path)
    store = LedgerStore(r.ledger)
    a = r.case_ids[0]
    v = case_versions(store)[a]
    with pytest.raises(LedgerError, match="needs a reason"):
        decide(store, Verdict(a, "reject", who="x", reason="ugly"), version=v)
    with pytest.raises(LedgerError, match="reviewer's name"):
        decide(store, Verdict(a, "confirm", who="  "), version=v)
    with pytest.raises(LedgerError, match="unknown verdict 'delete'"):
        decide(store, Verdict(a, "delete", who="x"), version=v)  # type: ignore[arg-type]
    with pytest.raises(LedgerError, match="no such case"):
        decide(store, Verdict("BW-nope", "confirm", who="x"), version=v)
    with pytest.raises(LedgerError, match="note is 501"):
        decide(store, Verdict(a, "confirm", who="x", note="n" * 501), version=v)
    assert case_versions(store)[a] == v  # nothing was written
    store.dispose()


def test_undo_only_walks_a_ledger_edge() -> None:
    from pipelines.cases.states import check_undo

    check_undo("BW-1", "existing", "notice", "evidence")
    check_undo("BW-1", "existing", "rejected", "penalty")
    with pytest.raises(TransitionError):
        check_undo("BW-1", "existing", "enforced", "evidence")
