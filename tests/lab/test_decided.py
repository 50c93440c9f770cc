"""``Check.decided``: when a result from a run still going on can no longer change (what
a live view shows as final instead of pending)."""

from __future__ import annotations

from nepi_lab.lab import CheckResult, NotFailed, Order, Reachable, RoutePresent, State


def result(passed: bool, observed=None, evaluated: bool = True) -> CheckResult:
    return CheckResult("c", passed, observed, "", "", 1 if passed else 0, 1, evaluated)


def test_every_check_is_decided_once_what_it_reads_has_ended():
    route = RoutePresent(node="h1", destination="default")
    for check in (State("a"), NotFailed("a"), Order("a", "b"), Reachable("p"), route):
        assert check.decided(result(True), ended=True) and check.decided(result(False), ended=True)


def test_a_state_reached_stays_reached_but_a_missed_one_may_come():
    assert State("a", "STARTED").decided(result(True, "STARTED"), ended=False)
    assert not State("a", "FINISHED").decided(result(False, "STARTED"), ended=False)


def test_a_failure_is_never_undone_but_not_failing_yet_says_little():
    assert NotFailed("a").decided(result(False, "FAILED"), ended=False)
    assert not NotFailed("a").decided(result(True, "STARTED"), ended=False)
    assert not NotFailed("a").decided(result(False, None, evaluated=False), ended=False)


def test_an_order_is_known_once_both_states_were_entered():
    assert Order("a", "b").decided(result(False, -0.5), ended=False)  # the wrong order, for good
    assert Order("a", "b").decided(result(True, 0.5), ended=False)
    assert not Order("a", "b").decided(result(False, None), ended=False)  # one has not got there yet


def test_a_measurement_waits_for_its_end_and_a_route_seen_was_there():
    assert not Reachable("p").decided(result(True, 0.0), ended=False)
    route = RoutePresent(node="h1", destination="default")
    assert route.decided(result(True, "default via 10.0.0.2"), ended=False)
    assert not route.decided(result(False, "no route"), ended=False)
