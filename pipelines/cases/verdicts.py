"""One reviewer's verdict on one case: confirm, reject with a reason, or undo — each one transaction.

This is how the review page (:mod:`pipelines.review`) changes the ledger. A verdict goes through
the same validation and the same writer as a township's updates import
(:func:`pipelines.cases.imports.validate_updates`, the state machine, one history row with who,
when and from which page), so it feeds the training labels (:mod:`pipelines.cases.feedback`)
exactly as an officer's update does.

Two reviewers at once lose nothing: every read of a case carries its **version** (the latest
history row of the case and the row's ``updated_at``), and a verdict names the version it was
decided on. Inside the write transaction, which holds the ledger's writer lock, a case whose
version moved on is refused with :class:`ConflictError` saying who changed it; nothing is
overwritten.

*Confirm* takes a case from its ledger's first state one step on (discovered → stopped,
evidence → notice), which is what makes it a confirmed structure for the training labels.
*Undo* withdraws the latest review verdict on a case, if nothing changed the case since: it walks
that one edge of the state machine back (:func:`pipelines.cases.states.check_undo`) and records
the withdrawal as a history row of its own, so the trail keeps both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import Connection, func, select

from geo.errors import LedgerError
from pipelines.cases.imports import Update, _write_updates, validate_updates
from pipelines.cases.states import (
    FIRST_STATE,
    REJECT_REASONS,
    REJECTED,
    allowed_transitions,
    check_undo,
)
from pipelines.cases.store import LedgerStore, now_iso
from pipelines.cases.tables import Tables

__all__ = [
    "REVIEW_SOURCE",
    "UNDO_SOURCE",
    "Verdict",
    "Decided",
    "ConflictError",
    "case_versions",
    "decide",
    "undo",
]

log = logging.getLogger(__name__)

#: history ``source`` prefixes of verdicts and of their withdrawals (followed by ``:page``)
REVIEW_SOURCE = "review"
UNDO_SOURCE = "review-undo"
_MAX_TEXT = 500


class ConflictError(LedgerError):
    """The case changed after the reviewer's page read it; nothing was written."""

    exit_code = 6


@dataclass(frozen=True)
class Verdict:
    """A reviewer's decision on one case (``page``: where it was made, for the audit trail)."""

    case_id: str
    action: Literal["confirm", "reject"]
    who: str
    reason: str = ""
    note: str = ""
    page: str = ""


@dataclass(frozen=True)
class Decided:
    """What a verdict (or an undo) did: the move, the history row it wrote, the new version."""

    case_id: str
    from_state: str
    to_state: str
    hid: int
    version: str


def _version(hid: int | None, updated_at: str | None) -> str:
    return f"{int(hid or 0)}@{updated_at or ''}"


def case_versions(
    store: LedgerStore, case_ids: list[str] | None = None, conn: Connection | None = None
) -> dict[str, str]:
    """The current version of each case (all, or of *case_ids*)."""
    t = store.require()
    c, h = t.cases.c, t.history.c
    latest = select(h.case_id, func.max(h.hid).label("hid")).group_by(h.case_id).subquery("latest")
    query = select(c.case_id, latest.c.hid, c.updated_at).outerjoin(
        latest, latest.c.case_id == c.case_id
    )
    if case_ids is not None:
        query = query.where(c.case_id.in_(list(case_ids)))
    if conn is None:
        with store.read() as own:
            rows = own.execute(query).all()
    else:
        rows = conn.execute(query).all()
    return {str(r[0]): _version(r[1], r[2]) for r in rows}


def _latest_row(conn: Connection, t: Tables, case_id: str) -> dict[str, object] | None:
    h = t.history.c
    row = (
        conn.execute(select(t.history).where(h.case_id == case_id).order_by(h.hid.desc()).limit(1))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def _check_version(
    store: LedgerStore, conn: Connection, t: Tables, case_id: str, version: str
) -> tuple[str, str]:
    """The case's (ledger, state) after checking it is still at *version*."""
    found = store.cases(conn, case_ids=[case_id], columns=("case_id", "ledger", "state"))
    if found.empty:
        raise LedgerError(f"case {case_id}: no such case in {store.label}")
    current = case_versions(store, [case_id], conn)[case_id]
    if current != version:
        last = _latest_row(conn, t, case_id) or {}
        by = (
            f" by {last.get('who')} at {last.get('recorded_at')} "
            f"({last.get('from_state')} → {last.get('to_state')})"
            if last
            else ""
        )
        raise ConflictError(
            f"case {case_id} was changed{by} after your page loaded it; nothing was written: "
            "reload the case and decide again"
        )
    return str(found["ledger"].iloc[0]), str(found["state"].iloc[0])


def _clean(text: str, what: str, case_id: str, limit: int = _MAX_TEXT) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        raise LedgerError(f"case {case_id}: {what} is {len(text)} characters; keep it ≤ {limit}")
    return text


def decide(
    store: LedgerStore, verdict: Verdict, *, version: str, today: date | None = None
) -> Decided:
    """Apply one verdict in one transaction, if the case is still at *version*."""
    v = verdict
    who = _clean(v.who, "the reviewer's name", v.case_id, 100)
    if not who:
        raise LedgerError(f"case {v.case_id}: say who decides (the reviewer's name)")
    if v.action not in ("confirm", "reject"):
        raise LedgerError(f"case {v.case_id}: unknown verdict {v.action!r}; confirm or reject")
    if v.action == "reject" and v.reason not in REJECT_REASONS:
        raise LedgerError(
            f"case {v.case_id}: rejecting needs a reason, one of {', '.join(REJECT_REASONS)}; "
            f"got {v.reason!r}"
        )
    note = _clean(v.note, "the note", v.case_id)
    page = _clean(v.page, "the page", v.case_id, 200)
    day = (today or date.today()).isoformat()
    t = store.require()
    with store.write() as conn:
        ledger, state = _check_version(store, conn, t, v.case_id, version)
        if v.action == "confirm":
            if state != FIRST_STATE[ledger]:
                raise LedgerError(
                    f"case {v.case_id} is {state!r}, past its ledger's first state "
                    f"({FIRST_STATE[ledger]!r}): it needs no confirmation"
                )
            to_state = allowed_transitions(ledger, state)[0]
        else:
            to_state = REJECTED
        update = Update(
            v.case_id, to_state, who, day, note, v.reason if to_state == REJECTED else ""
        )
        frame = store.cases(conn, case_ids=[v.case_id], columns=("case_id", "ledger", "state"))
        frame = frame.assign(first_seen="").drop(columns="geometry")
        good, problems = validate_updates([update], frame, today)
        if problems:
            raise LedgerError(f"case {v.case_id}: {problems[0].why}")
        _write_updates(conn, t, good, f"{REVIEW_SOURCE}:{page}")
        hid = int((_latest_row(conn, t, v.case_id) or {"hid": 0})["hid"])  # type: ignore[call-overload]
        new_version = case_versions(store, [v.case_id], conn)[v.case_id]
    log.info("review: %s %s → %s by %s", v.case_id, state, to_state, who)
    return Decided(v.case_id, state, to_state, hid, new_version)


def undo(store: LedgerStore, case_id: str, *, who: str, version: str, page: str = "") -> Decided:
    """Withdraw the latest review verdict on *case_id*, if the case is still at *version*."""
    who = _clean(who, "the reviewer's name", case_id, 100)
    if not who:
        raise LedgerError(f"case {case_id}: say who withdraws the verdict (the reviewer's name)")
    page = _clean(page, "the page", case_id, 200)
    t = store.require()
    with store.write() as conn:
        ledger, state = _check_version(store, conn, t, case_id, version)
        last = _latest_row(conn, t, case_id)
        source = str((last or {}).get("source", ""))
        if last is None or not source.startswith(f"{REVIEW_SOURCE}:"):
            raise LedgerError(
                f"case {case_id}: its latest change is not a review verdict "
                f"({source or 'no history'}); only a review verdict can be undone here"
            )
        back_to = str(last["from_state"])
        check_undo(case_id, ledger, state, back_to)
        now = now_iso()
        conn.execute(
            t.cases.update()
            .where(t.cases.c.case_id == case_id)
            .values(state=back_to, reject_reason="", updated_at=now)
        )
        conn.execute(
            t.history.insert(),
            {
                "case_id": case_id,
                "at": now,
                "who": who,
                "from_state": state,
                "to_state": back_to,
                "reject_reason": "",
                "note": f"撤回 (undo) of history row {last['hid']} by {last['who']}",
                "flight_id": "",
                "source": f"{UNDO_SOURCE}:{page}",
                "recorded_at": now,
            },
        )
        hid = int((_latest_row(conn, t, case_id) or {"hid": 0})["hid"])  # type: ignore[call-overload]
        new_version = case_versions(store, [case_id], conn)[case_id]
    log.info("review: %s %s → %s (undo) by %s", case_id, state, back_to, who)
    return Decided(case_id, state, back_to, hid, new_version)
