"""The fault harness's "time to recover": from the fault to the end of the last abnormal stretch."""

from __future__ import annotations

from infra.chaos.harness import recovered


def test_recovery_ends_when_the_backlog_is_back_to_what_it_was_before_the_fault() -> None:
    samples = [(0.0, 3), (1.0, 5), (2.0, 40), (3.0, None), (4.0, 12), (5.0, 5), (6.0, 2)]
    assert recovered(samples, fault_at=1.5) == 3.5


def test_a_blip_after_recovery_moves_the_end_to_the_blip() -> None:
    samples = [(0.0, 1), (1.0, 9), (2.0, 0), (3.0, 7), (4.0, 0)]
    assert recovered(samples, fault_at=0.5) == 3.5


def test_nothing_abnormal_after_the_fault_is_recovered_at_once() -> None:
    assert recovered([(0.0, 4), (1.0, 4), (2.0, 0)], fault_at=0.5) == 0.0


def test_still_abnormal_at_the_last_sample_is_not_recovered() -> None:
    assert recovered([(0.0, 0), (1.0, 0), (2.0, None)], fault_at=0.5) is None
    assert recovered([(0.0, 0), (1.0, 3)], fault_at=0.5) is None


def test_an_unhealthy_service_before_the_fault_does_not_count_as_normal() -> None:
    samples = [(0.0, None), (1.0, 2), (2.0, 3), (3.0, 2)]
    assert recovered(samples, fault_at=1.5) == 1.5


def test_first_recovery_is_the_end_of_the_first_abnormal_stretch() -> None:
    samples = [(0.0, 1), (1.0, 9), (2.0, 0), (3.0, None), (4.0, 0)]
    assert recovered(samples, fault_at=0.5, first=True) == 1.5
    assert recovered(samples, fault_at=0.5) == 3.5
    assert recovered([(0.0, 0), (1.0, 3)], fault_at=0.5, first=True) is None
    assert recovered([(0.0, 4), (1.0, 4)], fault_at=0.5, first=True) == 0.0
