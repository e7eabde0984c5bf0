"""The ledgers' state machine: exactly the notice's states, one step at a time, reject with reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.errors import LedgerError, TransitionError
from pipelines.cases.states import (
    LEDGERS,
    REJECT_REASONS,
    STATES,
    allowed_transitions,
    check_reopen,
    check_transition,
    is_confirmed,
    is_open,
    ledger_for_class,
)


def test_ledgers_are_the_notices() -> None:
    assert LEDGERS["in_progress"] == ("discovered", "stopped", "removed")
    assert LEDGERS["existing"] == ("evidence", "notice", "penalty", "enforced")
    assert ledger_for_class("construction") == "in_progress"
    assert ledger_for_class("new_building") == "existing"


@pytest.mark.parametrize(
    ("ledger", "path"),
    [
        ("in_progress", ["discovered", "stopped", "removed"]),
        ("existing", ["evidence", "notice", "penalty", "enforced"]),
    ],
)
def test_forward_path_is_allowed_and_ends_closed(ledger: str, path: list[str]) -> None:
    for frm, to in zip(path, path[1:], strict=False):
        check_transition("BW-1", ledger, frm, to)
    assert not is_open(path[-1])
    assert allowed_transitions(ledger, path[-1]) == ()


def test_skipping_a_step_is_refused_naming_case_states_and_allowed() -> None:
    with pytest.raises(
        TransitionError,
        match=r"case BW-500104-000007 \(in_progress ledger\): cannot go from 'discovered' to "
        r"'removed'; allowed from 'discovered': stopped, rejected",
    ):
        check_transition("BW-500104-000007", "in_progress", "discovered", "removed")


def test_backwards_and_closed_cases_refused() -> None:
    with pytest.raises(TransitionError, match=r"from 'notice' to 'evidence'"):
        check_transition("BW-2", "existing", "notice", "evidence")
    with pytest.raises(
        TransitionError, match=r"allowed from 'enforced': nothing \(the case is closed\)"
    ):
        check_transition("BW-2", "existing", "enforced", "rejected", "duplicate")
    with pytest.raises(TransitionError, match=r"allowed from 'rejected': nothing"):
        check_transition("BW-2", "in_progress", "rejected", "discovered")


def test_states_of_the_other_ledger_are_unknown() -> None:
    with pytest.raises(
        TransitionError, match=r"unknown state 'notice'; expected one of discovered"
    ):
        check_transition("BW-3", "in_progress", "notice", "penalty")
    with pytest.raises(TransitionError, match=r"unknown ledger 'both'"):
        check_transition("BW-3", "both", "discovered", "stopped")
    with pytest.raises(TransitionError, match=r"lead class 'shadow' has no ledger"):
        ledger_for_class("shadow")


def test_reject_needs_a_valid_reason_and_only_reject_takes_one() -> None:
    for reason in REJECT_REASONS:
        check_transition("BW-4", "existing", "penalty", "rejected", reason)
    with pytest.raises(TransitionError, match=r"rejecting needs a reason, one of false_detection"):
        check_transition("BW-4", "existing", "penalty", "rejected", "looks fine")
    with pytest.raises(TransitionError, match=r"only allowed when rejecting"):
        check_transition("BW-4", "existing", "evidence", "notice", "permitted")


def test_reopen_only_removed_in_progress_cases() -> None:
    assert check_reopen("BW-5", "in_progress", "removed") == "discovered"
    with pytest.raises(
        TransitionError, match=r"case BW-5 .*only a 'removed'.*this one is 'rejected'"
    ):
        check_reopen("BW-5", "in_progress", "rejected")
    assert issubclass(TransitionError, LedgerError) and issubclass(TransitionError, ValueError)


def test_confirmed_means_beyond_the_first_state() -> None:
    assert is_confirmed("in_progress", "stopped") and is_confirmed("existing", "enforced")
    assert not is_confirmed("in_progress", "discovered") and not is_confirmed(
        "existing", "rejected"
    )


@given(
    ledger=st.sampled_from(sorted(LEDGERS)),
    moves=st.lists(st.sampled_from(sorted({s for v in STATES.values() for s in v})), max_size=8),
)
def test_any_walk_only_ever_follows_allowed_moves(ledger: str, moves: list[str]) -> None:
    state = LEDGERS[ledger][0]
    for to in moves:
        reason = "duplicate" if to == "rejected" else ""
        ok = to in allowed_transitions(ledger, state) if to in STATES[ledger] else False
        if ok:
            check_transition("BW-H", ledger, state, to, reason)
            state = to
        else:
            with pytest.raises(TransitionError, match="BW-H"):
                check_transition("BW-H", ledger, state, to, reason)
    assert state in STATES[ledger]
