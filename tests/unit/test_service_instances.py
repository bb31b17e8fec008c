"""``SERVICE_INSTANCES`` for ``make run``: a whole number of processes per service, within reason."""

from __future__ import annotations

import pytest

from infra.stack import MAX_INSTANCES, StackError, instances_from


def test_one_to_the_partition_count_is_taken() -> None:
    assert instances_from("1") == 1
    assert instances_from("2") == 2
    assert instances_from(str(MAX_INSTANCES)) == MAX_INSTANCES


@pytest.mark.parametrize("value", ["0", str(MAX_INSTANCES + 1), "two", "-1", "1.5", ""])
def test_anything_else_is_refused_with_the_range(value: str) -> None:
    with pytest.raises(StackError, match=f"must be a whole number from 1 to {MAX_INSTANCES}"):
        instances_from(value)
