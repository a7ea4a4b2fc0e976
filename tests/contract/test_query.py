"""The list query: ModelArts' parameters with their bounds and defaults; ``offset`` is a page index."""

from __future__ import annotations

import pydantic
import pytest

from rayproc_contract.errors import InvalidParameter
from rayproc_contract.query import ListQuery
from rayproc_contract.status import TaskStatus, TaskType


def test_the_defaults() -> None:
    q = ListQuery()
    assert (q.limit, q.offset, q.page, q.order, q.sort_by, q.workspace_id) == (10, 0, 0, "desc", "create_time", "0")
    assert (q.status, q.task_type, q.task_name, q.source, q.source_type, q.version_ids) == (
        None, None, None, None, None, ())
    assert (q.query_current, q.return_result) == (False, True)


@pytest.mark.parametrize("values", [
    {"limit": 1}, {"limit": 100}, {"offset": 1_000_000}, {"status": 0}, {"status": 4}, {"order": "asc"},
    {"sort_by": "duration_seconds"}, {"source_type": "DATASET"}, {"task_name": "n" * 64},
    *({"task_type": t.value} for t in TaskType),
], ids=str)
def test_values_within_the_bounds(values: dict) -> None:
    assert ListQuery(**values).model_dump(include=set(values)) == values


@pytest.mark.parametrize("values", [
    {"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 1_000_001}, {"status": 5}, {"status": -1},
    {"order": "up"}, {"sort_by": "size"}, {"task_type": "sys_data_magic"}, {"source_type": "FTP"},
    {"task_name": "n" * 65}, {"source": "s" * 4097}, {"workspace_id": "w" * 65},
], ids=str)
def test_values_outside_the_bounds_are_refused_naming_the_parameter(values: dict) -> None:
    with pytest.raises(pydantic.ValidationError, match=next(iter(values))):
        ListQuery(**values)


def test_version_ids_split_strip_and_drop_repeats() -> None:
    q = ListQuery(version_id=["V2, V3", "V2", " ", "V1"])
    assert q.version_ids == ("V2", "V3", "V1")
    q.check_version_ids()


@pytest.mark.parametrize(("version_id", "fragment"), [
    ([",".join(f"v{i}" for i in range(101))], "at most 100 ids"),
    (["v" * 65], "at most 64 characters"),
])
def test_too_many_or_too_long_version_ids_are_an_invalid_parameter(version_id: list[str], fragment: str) -> None:
    with pytest.raises(InvalidParameter, match=fragment):
        ListQuery(version_id=version_id).check_version_ids()


def test_the_query_string_sends_every_value_once_and_each_version_id() -> None:
    q = ListQuery(limit=5, offset=2, status=TaskStatus.FAILED, task_type=TaskType.CLEANING.value,
                  version_id=["V1", "V2"], query_current=True)
    assert q.query_pairs() == (
        ("limit", "5"), ("offset", "2"), ("order", "desc"), ("sort_by", "create_time"), ("workspace_id", "0"),
        ("query_current", "true"), ("return_result", "true"), ("status", "3"), ("task_type", "sys_data_cleaning"),
        ("version_id", "V1"), ("version_id", "V2"))


def test_enums_given_unvalidated_are_sent_as_their_values() -> None:
    q = ListQuery.model_construct(status=TaskStatus.STOPPED, task_type=TaskType.SELECTION)
    assert dict(q.query_pairs())["task_type"] == "sys_data_selection" and dict(q.query_pairs())["status"] == "4"
