"""Drift of a live child from the plan, read from managedFields as the apiserver writes them."""

from __future__ import annotations

import copy
from typing import Any

from pipeline_operator.core.observe.drift import Drift, drift

MANAGER = "inference-pipelines"
CONTAINER = {"name": "kserve-container", "image": "tok:1", "resources": {"limits": {"cpu": "1"}}}
DESIRED: dict[str, Any] = {
    "metadata": {"name": "clf-tok-1", "labels": {"app": "x"}},
    "spec": {
        "predictor": {
            "minReplicas": 1,
            "containers": [CONTAINER],
            "model": {
                "env": [{"name": "A", "value": "1"}],
                "resources": {"limits": {"cpu": "1"}},
            },
        }
    },
}
OURS = {
    "manager": MANAGER,
    "operation": "Apply",
    "fieldsV1": {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:predictor": {
                "f:minReplicas": {},
                "f:containers": {},
                "f:model": {
                    "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
                    "f:resources": {"f:limits": {"f:cpu": {}}},
                },
            }
        },
    },
}


def live(*others: dict[str, Any], edit: Any = None) -> dict[str, Any]:
    """The applied child with KServe's unowned defaults, other managers' entries and edits."""
    obj = copy.deepcopy(DESIRED)
    obj["spec"]["predictor"]["model"]["name"] = ""  # the webhook's default: owned by nobody
    obj["metadata"]["finalizers"] = ["inferenceservice.finalizers"]
    obj["metadata"]["managedFields"] = [
        OURS,
        {
            "manager": "kserve-manager",
            "operation": "Update",
            "fieldsV1": {"f:metadata": {"f:finalizers": {".": {}}}},
        },
        {"manager": "kserve-manager", "operation": "Update", "subresource": "status"},
        *others,
    ]
    if edit is not None:
        edit(obj)
    return obj


def patched(fields: dict[str, Any]) -> dict[str, Any]:
    return {"manager": "kubectl-patch", "operation": "Update", "fieldsV1": fields}


def test_defaults_nobody_owns_and_metadata_of_other_managers_are_no_drift() -> None:
    assert drift(DESIRED, live(), MANAGER) == Drift()


def test_a_gpu_limit_added_to_an_atomic_container_list_is_applied_back() -> None:
    def add_gpu(obj: dict[str, Any]) -> None:
        obj["spec"]["predictor"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"

    taken = patched({"f:spec": {"f:predictor": {"f:containers": {}}}})
    assert drift(DESIRED, live(taken, edit=add_gpu), MANAGER) == Drift(reapply=True)


def test_a_field_added_by_hand_is_removed() -> None:
    def add_gpu(obj: dict[str, Any]) -> None:
        obj["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] = "1"

    added = patched(
        {
            "f:spec": {
                "f:predictor": {"f:model": {"f:resources": {"f:limits": {"f:nvidia.com/gpu": {}}}}}
            }
        }
    )
    pointer = "/spec/predictor/model/resources/limits/nvidia.com~1gpu"
    assert drift(DESIRED, live(added, edit=add_gpu), MANAGER) == Drift(remove=(pointer,))


def test_list_items_added_by_hand_are_removed_last_first() -> None:
    def add_env(obj: dict[str, Any]) -> None:
        obj["spec"]["predictor"]["model"]["env"] += [{"name": "X"}, {"name": "Y"}]

    keyed = {'k:{"name":"X"}': {".": {}, "f:name": {}}, 'k:{"name":"Y"}': {".": {}}}
    added = patched({"f:spec": {"f:predictor": {"f:model": {"f:env": keyed}}}})
    assert drift(DESIRED, live(added, edit=add_env), MANAGER).remove == (
        "/spec/predictor/model/env/2",
        "/spec/predictor/model/env/1",
    )


def test_a_value_changed_by_hand_is_applied_back_and_an_equal_one_left_alone() -> None:
    def scale(replicas: int) -> Any:
        return lambda obj: obj["spec"]["predictor"].update(minReplicas=replicas)

    taken = patched({"f:spec": {"f:predictor": {"f:minReplicas": {}}}})
    assert drift(DESIRED, live(taken, edit=scale(42)), MANAGER) == Drift(reapply=True)
    assert drift(DESIRED, live(taken, edit=scale(1)), MANAGER) == Drift()


def test_a_field_the_plan_no_longer_sets_is_applied_away() -> None:
    desired = copy.deepcopy(DESIRED)
    del desired["spec"]["predictor"]["minReplicas"]
    assert drift(desired, live(), MANAGER) == Drift(reapply=True)


def test_a_graph_node_added_by_hand_is_removed() -> None:
    desired = {"spec": {"nodes": {"root": {"routerType": "Sequence", "steps": []}}}}
    ours = {
        "manager": MANAGER,
        "operation": "Apply",
        "fieldsV1": {
            "f:spec": {"f:nodes": {"f:root": {".": {}, "f:routerType": {}, "f:steps": {}}}}
        },
    }
    node = {".": {}, "f:routerType": {}, "f:steps": {}}
    added = patched({"f:spec": {"f:nodes": {"f:extra": node}}})
    graph = copy.deepcopy(desired)
    graph["spec"]["nodes"]["extra"] = {"routerType": "Sequence", "steps": []}
    graph["metadata"] = {"managedFields": [ours, added]}
    assert drift(desired, graph, MANAGER) == Drift(remove=("/spec/nodes/extra",))


def test_a_quantity_kserve_stores_in_another_spelling_is_no_drift() -> None:
    """KServe's webhook re-marshals resource quantities: ``0.5`` comes back ``500m``, ``1``
    as ``1000m`` in some versions, ``1.5Gi`` as ``1536Mi``. The same amount needs no write; a
    different one does."""
    desired = copy.deepcopy(DESIRED)
    desired["spec"]["predictor"]["model"]["resources"] = {
        "limits": {"cpu": "0.5", "memory": "1.5Gi"}
    }

    def stored(cpu: str, memory: str) -> Any:
        def edit(obj: dict[str, Any]) -> None:
            obj["spec"]["predictor"]["model"]["resources"] = {
                "limits": {"cpu": cpu, "memory": memory}
            }

        return edit

    assert drift(desired, live(edit=stored("500m", "1536Mi")), MANAGER) == Drift()
    assert drift(desired, live(edit=stored("0.5", "1.5Gi")), MANAGER) == Drift()
    assert drift(desired, live(edit=stored("600m", "1536Mi")), MANAGER).reapply
    # Elsewhere strings are strings: an env value "1" edited to "1.0" is applied back.
    edited = live(edit=lambda o: o["spec"]["predictor"]["model"]["env"][0].update(value="1.0"))
    assert drift(DESIRED, edited, MANAGER).reapply
