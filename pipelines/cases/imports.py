"""Officers' updates: bulk imports from townships (CSV/XLSX), single updates, supervision.

An import file has one row per state change, with the columns ``case_id, to_state, who, date,
note, reason`` (Chinese headers accepted: 案件编号, 新状态, 经办人, 日期, 备注, 驳回原因; state
and reason values may be Chinese too: 制止, 消除, 公告, 驳回, 误报 ...). Rows for the same case
apply in file order, so one file may take a case through several steps.

Every row is validated before anything is written, and all problems are reported at once
(row number as in the spreadsheet, column, value, why) in one
:class:`ImportValidationError`; an import applies every row or none (one transaction).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection

from geo.errors import InputFileError, LedgerError, TransitionError
from pipelines.cases.states import (
    REJECT_REASON_LABELS_ZH,
    REJECT_REASONS,
    REJECTED,
    STATE_LABELS_ZH,
    check_transition,
    is_open,
)
from pipelines.cases.store import LedgerStore, now_iso
from pipelines.cases.tables import Tables

__all__ = [
    "IMPORT_COLUMNS",
    "HEADER_ALIASES",
    "Update",
    "Problem",
    "ImportResult",
    "ImportValidationError",
    "normalise_state",
    "normalise_reason",
    "read_sheet",
    "read_updates",
    "parse_date",
    "validate_updates",
    "apply_updates",
    "import_updates",
    "supervise",
    "overdue",
]

log = logging.getLogger(__name__)

IMPORT_COLUMNS = ("case_id", "to_state", "who", "date", "note", "reason")
#: accepted header spellings (lower-cased, stripped) -> canonical column
HEADER_ALIASES: dict[str, str] = {
    **{c: c for c in IMPORT_COLUMNS},
    "案件编号": "case_id",
    "案件号": "case_id",
    "编号": "case_id",
    "新状态": "to_state",
    "状态": "to_state",
    "目标状态": "to_state",
    "处置状态": "to_state",
    "经办人": "who",
    "操作人": "who",
    "处理人": "who",
    "日期": "date",
    "处置日期": "date",
    "办理日期": "date",
    "备注": "note",
    "说明": "note",
    "驳回原因": "reason",
    "原因": "reason",
}
_STATE_ALIASES = {
    **{zh: en for en, zh in STATE_LABELS_ZH.items()},
    "驳回": "rejected",
    "已制止": "stopped",
    "已消除": "removed",
    "已拆除": "removed",
    "拆除": "removed",
}
_REASON_ALIASES = {
    **{zh: en for en, zh in REJECT_REASON_LABELS_ZH.items()},
    "有手续": "permitted",
    "已审批": "permitted",
    "重复上报": "duplicate",
}


def normalise_state(value: str) -> str:
    """English state name from English or Chinese (``消除`` → ``removed``)."""
    value = value.strip()
    return _STATE_ALIASES.get(value, value.lower())


def normalise_reason(value: str) -> str:
    """English reject reason from English or Chinese (``误报`` → ``false_detection``)."""
    value = value.strip()
    return _REASON_ALIASES.get(value, value.lower())


@dataclass(frozen=True)
class Update:
    """One requested state change (``row``: the spreadsheet row it came from, 0 = CLI)."""

    case_id: str
    to_state: str
    who: str
    date: str
    note: str = ""
    reason: str = ""
    row: int = 0


@dataclass(frozen=True)
class Problem:
    """Why one cell of an import file cannot be applied."""

    row: int
    column: str
    value: str
    why: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row else "update"
        return f"{where}, column {self.column!r}, value {self.value!r}: {self.why}"


class ImportValidationError(LedgerError, ValueError):
    """An import (or update) has problems; nothing was applied. ``problems`` lists them all."""

    exit_code = 6

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n  ".join(str(p) for p in self.problems)
        super().__init__(
            f"{source}: {len(self.problems)} problem(s), nothing was applied; fix them and "
            f"try again:\n  {lines}"
        )


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, with ``dry_run``, would do): (case_id, from, to) per row."""

    source: str
    dry_run: bool
    changes: tuple[tuple[str, str, str], ...]


def read_sheet(path: str | Path, what: str) -> pd.DataFrame:
    """The one filled sheet of a CSV (UTF-8 or GB18030) or XLSX file, every cell as text.

    *what* names the file's kind in messages ("update file", "report file", ...).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: {what} not found; pass a .csv or .xlsx file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            sheets = pd.read_excel(path, dtype=str, engine="openpyxl", sheet_name=None)
            filled = {n: f for n, f in sheets.items() if not f.dropna(how="all").empty}
            if len(filled) > 1:
                raise InputFileError(
                    f"{path}: rows on {len(filled)} sheets ({', '.join(map(str, filled))}); put "
                    "all rows on one sheet (nothing was applied)"
                )
            frame = next(iter(filled.values())) if filled else next(iter(sheets.values()))
        elif suffix == ".csv":
            try:
                frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
            except UnicodeDecodeError:
                frame = pd.read_csv(path, dtype=str, encoding="gb18030", keep_default_na=False)
        else:
            raise InputFileError(f"{path}: unsupported file type {suffix!r}; use .csv or .xlsx")
    except (ValueError, OSError) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(f"{path}: cannot read ({exc}); save it as .csv or .xlsx") from exc
    return frame


def read_updates(path: str | Path) -> list[Update]:
    """Rows of a CSV (UTF-8 or GB18030) or XLSX update file, with headers and values normalised."""
    path = Path(path)
    frame = read_sheet(path, "update file")
    rename = {c: HEADER_ALIASES.get(str(c).strip().lower(), str(c)) for c in frame.columns}
    frame = frame.rename(columns=rename).fillna("")
    # rows with nothing in any cell (trailing blank lines a spreadsheet leaves) are not updates
    blank = frame.apply(lambda r: all(not str(v).strip() for v in r), axis=1)
    frame = frame.loc[~blank] if len(frame) else frame
    missing = [c for c in ("case_id", "to_state", "who", "date") if c not in frame.columns]
    if missing:
        raise InputFileError(
            f"{path}: missing column(s) {missing} (found {list(frame.columns)}); the header needs "
            f"{list(IMPORT_COLUMNS)} or 案件编号, 新状态, 经办人, 日期, 备注, 驳回原因"
        )
    if frame.empty:
        raise InputFileError(
            f"{path}: no update rows under the header; nothing to apply (fill in one row per "
            "case change)"
        )
    updates = []
    for i, rec in zip(frame.index, frame.to_dict("records"), strict=True):
        updates.append(
            Update(
                case_id=str(rec["case_id"]).strip(),
                to_state=normalise_state(str(rec["to_state"])),
                who=str(rec["who"]).strip(),
                date=str(rec["date"]).strip(),
                note=str(rec.get("note", "")).strip(),
                reason=normalise_reason(str(rec.get("reason", ""))),
                row=i + 2,  # header is spreadsheet row 1
            )
        )
    return updates


def parse_date(value: str) -> str | None:
    """An ISO date from ``YYYY-MM-DD`` or ``YYYY/MM/DD`` (optionally followed by a time of day,
    as spreadsheets write dates); anything else, even a date with trailing text, is None.

    >>> parse_date("2024/04/19"), parse_date("2024-04-19 00:00:00"), parse_date("2024-04-19x")
    ('2024-04-19', '2024-04-19', None)
    """
    text = value.strip().replace("/", "-")
    head, _, rest = text.partition(" ")
    if rest and not re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", rest.strip()):
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", head):
        return None
    try:
        return date.fromisoformat(head).isoformat()
    except ValueError:
        return None


def validate_updates(
    updates: Sequence[Update], cases: pd.DataFrame, today: date | None = None
) -> tuple[list[tuple[Update, str]], list[Problem]]:
    """Check every update against the ledger (``cases``: case_id, ledger, state, first_seen).

    Returns the valid updates with each one's from-state, and every problem found. Pure.
    """
    today = today or date.today()
    known = {str(r["case_id"]): r for r in cases.to_dict("records")}
    current: dict[str, str] = {}
    good: list[tuple[Update, str]] = []
    problems: list[Problem] = []
    for u in updates:
        bad = len(problems)
        if not u.who:
            problems.append(Problem(u.row, "who", u.who, "who made the change is required"))
        day = parse_date(u.date)
        if day is None:
            problems.append(Problem(u.row, "date", u.date, "not a date; write YYYY-MM-DD"))
        elif day > today.isoformat():
            problems.append(Problem(u.row, "date", u.date, "is in the future"))
        case = known.get(u.case_id)
        if case is None:
            why = "case id is empty" if not u.case_id else "no such case in the ledger"
            problems.append(Problem(u.row, "case_id", u.case_id, why))
            continue
        if day is not None and day < str(case["first_seen"] or "")[:10]:
            problems.append(
                Problem(u.row, "date", u.date, f"before the case was found ({case['first_seen']})")
            )
        frm = current.get(u.case_id, str(case["state"]))
        ledger = str(case["ledger"])
        if u.to_state == frm and u.case_id not in current:
            problems.append(
                Problem(u.row, "to_state", u.to_state, f"already applied: the case is {frm!r}")
            )
            continue
        try:  # the move itself (with a placeholder reason), then the reason
            placeholder = REJECT_REASONS[0] if u.to_state == REJECTED else ""
            check_transition(u.case_id, ledger, frm, u.to_state, placeholder)
        except TransitionError as exc:
            problems.append(Problem(u.row, "to_state", u.to_state, str(exc)))
            continue
        try:
            check_transition(u.case_id, ledger, frm, u.to_state, u.reason)
        except TransitionError as exc:
            problems.append(Problem(u.row, "reason", u.reason, str(exc)))
            continue
        current[u.case_id] = u.to_state
        if len(problems) == bad:
            good.append((u, frm))
    return good, problems


def _case_states(store: LedgerStore, conn: Connection | None) -> pd.DataFrame:
    frame = store.cases(conn, columns=("case_id", "ledger", "state", "first_seen"))
    return pd.DataFrame(frame.drop(columns="geometry"))


def apply_updates(
    store: LedgerStore,
    updates: Sequence[Update],
    *,
    source: str = "cli",
    dry_run: bool = False,
    today: date | None = None,
) -> ImportResult:
    """Validate every update, then apply all of them in one transaction (or none)."""
    if dry_run:
        good, problems = validate_updates(updates, _case_states(store, None), today)
        if problems:
            raise ImportValidationError(source, problems)
        return ImportResult(source, True, tuple((u.case_id, f, u.to_state) for u, f in good))
    tables = store.require()
    with store.write() as conn:
        good, problems = validate_updates(updates, _case_states(store, conn), today)
        if problems:
            raise ImportValidationError(source, problems)
        _write_updates(conn, tables, good, source)
    log.info("applied %d update(s) from %s to %s", len(good), source, store.label)
    return ImportResult(source, False, tuple((u.case_id, f, u.to_state) for u, f in good))


def _write_updates(
    conn: Connection, t: Tables, good: Sequence[tuple[Update, str]], source: str
) -> None:
    from pipelines.cases.ingest import pause_hook

    now = now_iso()
    for u, _ in good:
        conn.execute(
            t.cases.update()
            .where(t.cases.c.case_id == u.case_id)
            .values(state=u.to_state, reject_reason=u.reason, updated_at=now)
        )
    conn.execute(
        t.history.insert(),
        [
            {
                "case_id": u.case_id,
                "at": parse_date(u.date),
                "who": u.who,
                "from_state": frm,
                "to_state": u.to_state,
                "reject_reason": u.reason,
                "note": u.note,
                "flight_id": "",
                "source": source,
                "recorded_at": now,
            }
            for u, frm in good
        ],
    )
    pause_hook("import")


def import_updates(
    store: LedgerStore, path: str | Path, *, dry_run: bool = False, today: date | None = None
) -> ImportResult:
    """Read a township's CSV/XLSX update file and apply it all-or-nothing."""
    updates = read_updates(path)
    return apply_updates(
        store, updates, source=f"import:{Path(path).name}", dry_run=dry_run, today=today
    )


def supervise(
    store: LedgerStore,
    case_id: str,
    *,
    deadline: str | None,
    who: str,
    note: str = "",
    off: bool = False,
) -> None:
    """Put an open case under supervision (挂牌督办) with a deadline, or lift it (``off``)."""
    if not who:
        raise LedgerError(f"case {case_id}: say who orders the supervision (--who)")
    day = None if off else parse_date(deadline or "")
    if not off and day is None:
        raise LedgerError(f"case {case_id}: deadline {deadline!r} is not a date; use YYYY-MM-DD")
    t = store.require()
    with store.write() as conn:
        found = store.cases(conn, case_ids=[case_id], columns=("case_id", "state"))
        if found.empty:
            raise LedgerError(f"case {case_id}: no such case in {store.label}")
        state = str(found["state"].iloc[0])
        if not off and not is_open(state):
            raise LedgerError(f"case {case_id} is closed ({state}); only open cases are supervised")
        now = now_iso()
        conn.execute(
            t.cases.update()
            .where(t.cases.c.case_id == case_id)
            .values(supervised=not off, deadline=day or "", updated_at=now)
        )
        what = "撤销督办 (supervision lifted)" if off else f"挂牌督办 (supervised), deadline {day}"
        conn.execute(
            t.history.insert(),
            {
                "case_id": case_id,
                "at": now,
                "who": who,
                "from_state": state,
                "to_state": state,
                "reject_reason": "",
                "note": f"{what}{'; ' + note if note else ''}",
                "flight_id": "",
                "source": "cli:supervise",
                "recorded_at": now,
            },
        )


def overdue(store: LedgerStore, today: date | None = None) -> pd.DataFrame:
    """Open supervised cases past their deadline, most overdue first (``days_overdue``)."""
    today = today or date.today()
    cases = store.cases(open_only=True)
    late = cases[cases["supervised"] & (cases["deadline"].fillna("") != "")]
    late = late[late["deadline"] < today.isoformat()].copy()
    late["days_overdue"] = [(today - date.fromisoformat(d)).days for d in late["deadline"]]
    return late.sort_values(["days_overdue", "case_id"], ascending=[False, True])
