"""The operator's writes: each bounded by what is left of the leader Lease, deletes aimed at
the object the operator saw (its uid), none sent once the Lease is (nearly) gone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pipeline_operator.k8s.client import (
    MIN_WRITE_WINDOW,
    WRITE_TIMEOUT,
    Kube,
    NotLeadingError,
)


class Api(client.ApiClient):
    """The real client, but each call is recorded and answered with ``status`` (200: an
    empty success) instead of sent."""

    def __init__(self, status: int = 200) -> None:
        super().__init__(client.Configuration())
        self.calls: list[dict[str, Any]] = []
        self.status = status

    def call_api(self, resource_path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append({"path": resource_path, "method": method, **kwargs})
        if self.status != 200:
            raise ApiException(status=self.status, reason="refused")
        if kwargs.get("_preload_content") is False:  # the raw response, as urllib3 gives it
            return SimpleNamespace(data=b"{}")
        return {}


SERVICE = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "p-m-r1", "namespace": "ml", "uid": "u-1"},
}


def kube(api: Api, window: float | None) -> Kube:
    return Kube(api, "pipelines", write_window=lambda: window)


@pytest.mark.parametrize(("window", "timeout"), [(None, WRITE_TIMEOUT), (4.5, 4.5), (99, 30)])
def test_every_write_times_out_before_the_lease_does(window: float | None, timeout: float) -> None:
    api = Api()
    k = kube(api, window)
    k.apply(SERVICE)
    k.annotate(SERVICE, "a", "b")
    k.remove_fields(SERVICE, ["/spec/x"])
    k.patch_pipeline_status("ml", "p", {"phase": "Healthy"}, "7")
    k.delete(SERVICE)
    k.create_revision({"metadata": {"name": "p-1", "namespace": "ml"}})
    k.delete_revision("ml", "p-1")
    k.post_event({**SERVICE, "apiVersion": "v1"}, "Normal", "R", "m")
    assert len(api.calls) == 8
    assert {call["_request_timeout"] for call in api.calls} == {min(timeout, WRITE_TIMEOUT)}


def test_no_write_is_sent_with_less_than_a_second_of_lease_left() -> None:
    api = Api()
    for window in (0.0, MIN_WRITE_WINDOW / 2):
        with pytest.raises(NotLeadingError, match="apply InferenceService not sent"):
            kube(api, window).apply(SERVICE)
    assert api.calls == []


def test_a_delete_names_the_uid_it_saw_and_another_object_of_that_name_is_left_alone() -> None:
    api = Api()
    kube(api, None).delete(SERVICE)
    [call] = api.calls
    assert call["method"] == "DELETE"
    assert call["body"] == {"propagationPolicy": "Background", "preconditions": {"uid": "u-1"}}
    for status in (404, 409):  # gone, or recreated (another uid): nothing to do
        kube(Api(status), None).delete(SERVICE)
    with pytest.raises(ApiException):
        kube(Api(500), None).delete(SERVICE)
