"""The two ledgers' states and the transitions between them: a pure state machine.

The municipal notice keeps two ledgers (``../shared/DOMAIN.md``, "The two ledgers"):

* ``in_progress`` (在建违法建筑, class ``construction``): discovered → stopped → removed
* ``existing`` (存量违法建筑, class ``new_building``): evidence → notice → penalty → enforced

From any *open* state a case may be ``rejected`` with a reason (``false_detection``, ``permitted``,
``duplicate``). A ``removed`` case that is detected again is *reopened* (back to ``discovered``);
that move is made only by an ingest, never by an officer's update. Steps are taken one at a time,
so every step of the notice is dated in the history.

>>> allowed_transitions("in_progress", "discovered")
('stopped', 'rejected')
>>> check_transition("BW-500104-000001", "existing", "evidence", "notice")
>>> check_transition("BW-500104-000001", "existing", "evidence", "enforced")
Traceback (most recent call last):
...
geo.errors.TransitionError: case BW-500104-000001 (existing ledger): cannot go from 'evidence' to 'enforced'; allowed from 'evidence': notice, rejected
"""

from __future__ import annotations

from typing import Final, Literal

from geo.errors import TransitionError

__all__ = [
    "LEDGERS",
    "LEDGER_OF_CLASS",
    "STATES",
    "FIRST_STATE",
    "CLOSED_STATES",
    "REJECTED",
    "REJECT_REASONS",
    "STATE_LABELS_ZH",
    "LEDGER_LABELS_ZH",
    "REJECT_REASON_LABELS_ZH",
    "Ledger",
    "ledger_for_class",
    "is_open",
    "is_confirmed",
    "allowed_transitions",
    "check_transition",
    "check_reopen",
    "check_undo",
]

Ledger = Literal["in_progress", "existing"]

#: each ledger's states in order (the last one closes the case)
LEDGERS: Final[dict[str, tuple[str, ...]]] = {
    "in_progress": ("discovered", "stopped", "removed"),
    "existing": ("evidence", "notice", "penalty", "enforced"),
}
#: the detector class that opens a case in each ledger
LEDGER_OF_CLASS: Final[dict[str, str]] = {"construction": "in_progress", "new_building": "existing"}
REJECTED: Final = "rejected"
REJECT_REASONS: Final[tuple[str, ...]] = ("false_detection", "permitted", "duplicate")
FIRST_STATE: Final[dict[str, str]] = {ledger: states[0] for ledger, states in LEDGERS.items()}
#: states in which a case is closed (not "open")
CLOSED_STATES: Final[frozenset[str]] = frozenset({"removed", "enforced", REJECTED})
STATES: Final[dict[str, tuple[str, ...]]] = {
    ledger: (*states, REJECTED) for ledger, states in LEDGERS.items()
}

STATE_LABELS_ZH: Final[dict[str, str]] = {
    "discovered": "发现",
    "stopped": "制止",
    "removed": "消除",
    "evidence": "取证",
    "notice": "公告",
    "penalty": "处罚",
    "enforced": "执行",
    "rejected": "已驳回",
}
LEDGER_LABELS_ZH: Final[dict[str, str]] = {
    "in_progress": "在建违法建筑",
    "existing": "存量违法建筑",
}
REJECT_REASON_LABELS_ZH: Final[dict[str, str]] = {
    "false_detection": "误报",
    "permitted": "有审批手续",
    "duplicate": "重复",
}


def ledger_for_class(cls: str) -> str:
    """The ledger a new case of detector class *cls* goes to.

    >>> ledger_for_class("construction"), ledger_for_class("new_building")
    ('in_progress', 'existing')
    """
    try:
        return LEDGER_OF_CLASS[cls]
    except KeyError:
        raise TransitionError(
            f"lead class {cls!r} has no ledger; expected one of {sorted(LEDGER_OF_CLASS)}"
        ) from None


def is_open(state: str) -> bool:
    """True unless the case is removed, enforced or rejected.

    >>> is_open("stopped"), is_open("removed"), is_open("rejected")
    (True, False, False)
    """
    return state not in CLOSED_STATES


def is_confirmed(ledger: str, state: str) -> bool:
    """True when officers moved the case beyond its ledger's first state (and did not reject it).

    >>> is_confirmed("in_progress", "stopped"), is_confirmed("existing", "evidence")
    (True, False)
    """
    return state != REJECTED and state in LEDGERS.get(ledger, ()) and state != FIRST_STATE[ledger]


def _check_ledger(case_id: str, ledger: str, state: str) -> tuple[str, ...]:
    if ledger not in LEDGERS:
        raise TransitionError(
            f"case {case_id}: unknown ledger {ledger!r}; expected one of {sorted(LEDGERS)}"
        )
    if state not in STATES[ledger]:
        raise TransitionError(
            f"case {case_id} ({ledger} ledger): unknown state {state!r}; "
            f"expected one of {', '.join(STATES[ledger])}"
        )
    return LEDGERS[ledger]


def allowed_transitions(ledger: str, state: str) -> tuple[str, ...]:
    """The states an officer may move a case to from *state* (empty for a closed case).

    >>> allowed_transitions("existing", "penalty")
    ('enforced', 'rejected')
    >>> allowed_transitions("in_progress", "removed")
    ()
    """
    order = _check_ledger("?", ledger, state)
    if not is_open(state):
        return ()
    i = order.index(state)
    return (*order[i + 1 : i + 2], REJECTED)


def check_transition(
    case_id: str, ledger: str, from_state: str, to_state: str, reason: str = ""
) -> None:
    """Raise :class:`TransitionError` unless an officer may move the case *from_state* → *to_state*.

    *reason* is required (one of :data:`REJECT_REASONS`) when *to_state* is ``rejected`` and must
    be empty otherwise.

    >>> check_transition("BW-1", "in_progress", "stopped", "rejected", "duplicate")
    >>> check_transition("BW-1", "in_progress", "stopped", "rejected")
    Traceback (most recent call last):
    ...
    geo.errors.TransitionError: case BW-1: rejecting needs a reason, one of false_detection, permitted, duplicate; got ''
    """
    _check_ledger(case_id, ledger, from_state)
    allowed = allowed_transitions(ledger, from_state)
    if to_state not in allowed:
        allowed_txt = ", ".join(allowed) if allowed else "nothing (the case is closed)"
        raise TransitionError(
            f"case {case_id} ({ledger} ledger): cannot go from {from_state!r} to {to_state!r}; "
            f"allowed from {from_state!r}: {allowed_txt}"
        )
    if to_state == REJECTED and reason not in REJECT_REASONS:
        raise TransitionError(
            f"case {case_id}: rejecting needs a reason, one of {', '.join(REJECT_REASONS)}; "
            f"got {reason!r}"
        )
    if to_state != REJECTED and reason:
        raise TransitionError(
            f"case {case_id}: a reason ({reason!r}) is only allowed when rejecting; "
            f"leave it empty for a move to {to_state!r}"
        )


def check_reopen(case_id: str, ledger: str, from_state: str) -> str:
    """The state a case detected again after removal goes back to (``discovered``).

    Only ``removed`` cases of the in-progress ledger reopen; anything else raises.

    >>> check_reopen("BW-1", "in_progress", "removed")
    'discovered'
    """
    _check_ledger(case_id, ledger, from_state)
    if ledger != "in_progress" or from_state != "removed":
        raise TransitionError(
            f"case {case_id} ({ledger} ledger): only a 'removed' in-progress case can be reopened; "
            f"this one is {from_state!r}"
        )
    return FIRST_STATE["in_progress"]


def check_undo(case_id: str, ledger: str, current: str, back_to: str) -> None:
    """Raise unless a verdict that moved the case *back_to* → *current* may be withdrawn.

    Undo walks one edge of the state machine backwards: only an edge an officer may take forwards
    (:func:`check_transition`) can be withdrawn, so undo never reaches a state the ledger cannot
    hold.

    >>> check_undo("BW-1", "in_progress", "stopped", "discovered")
    >>> check_undo("BW-1", "in_progress", "removed", "discovered")
    Traceback (most recent call last):
    ...
    geo.errors.TransitionError: case BW-1 (in_progress ledger): 'discovered' → 'removed' is not one step of the ledger, so it cannot be undone
    """
    _check_ledger(case_id, ledger, current)
    _check_ledger(case_id, ledger, back_to)
    if current not in allowed_transitions(ledger, back_to):
        raise TransitionError(
            f"case {case_id} ({ledger} ledger): {back_to!r} → {current!r} is not one step of the "
            "ledger, so it cannot be undone"
        )
