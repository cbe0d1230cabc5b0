"""Subset comparison and merge patches over plain Kubernetes objects."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline_operator.core.objects import is_subset, merge_patch
from tests.unit.fake_kube import apply_merge_patch

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)
OBJECTS = st.dictionaries(st.text(max_size=3), JSON, max_size=4)


def test_subset_ignores_fields_added_by_the_server() -> None:
    desired = {"spec": {"predictor": {"minReplicas": 1}}, "metadata": {"labels": {"a": "1"}}}
    live = {
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 3}},
        "metadata": {"labels": {"a": "1", "b": "2"}, "resourceVersion": "7"},
        "status": {"ready": True},
    }
    assert is_subset(desired, live)


def test_subset_sees_edits_and_list_changes() -> None:
    assert not is_subset({"a": {"b": 1}}, {"a": {"b": 2}})
    assert not is_subset({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert not is_subset({"a": 1}, {})
    assert is_subset({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]})


@given(OBJECTS)
def test_an_object_is_a_subset_of_itself(obj: dict[str, Any]) -> None:
    assert is_subset(obj, obj)


def _no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and _no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_nulls(v) for v in value)
    return True


@given(OBJECTS.filter(_no_nulls), OBJECTS.filter(_no_nulls))
def test_merge_patch_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply_merge_patch(old, merge_patch(old, new)) == new


def test_merge_patch_of_equal_objects_is_empty() -> None:
    assert merge_patch({"a": {"b": [1]}}, {"a": {"b": [1]}}) == {}
