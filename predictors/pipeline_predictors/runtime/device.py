"""Where a predictor serves: its ``--device`` and the GPUs its replica was given.

A stage that requests GPUs gets their number in ``INFERENCE_PIPELINE_GPUS`` (the operator
sets it). With ``--device auto`` such a replica serves on a CUDA device or does not start: a
GPU stage never serves on the CPU without a word. ``--device cpu`` says so explicitly.
"""

from __future__ import annotations

GPUS_ENV = "INFERENCE_PIPELINE_GPUS"
# The NVIDIA driver the images' CUDA 13 builds of torch need.
DRIVER_FLOOR = "580"


class DeviceUnavailableError(ValueError):
    """The device asked for, or the GPUs a replica was given, cannot be used."""


def resolve_device(device: str, gpus: int, cuda: bool, no_cuda_reason: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` for ``device`` (auto, cpu, cuda, cuda:N).

    ``cuda``: whether the runtime can use a CUDA device; ``no_cuda_reason`` says why not.
    """
    if device == "cpu":
        return "cpu"
    if device == "auto":
        if cuda:
            return "cuda"
        if gpus > 0:
            raise DeviceUnavailableError(
                f"this replica was given {gpus} GPU(s) ({GPUS_ENV}) but {no_cuda_reason}; "
                "pass --device=cpu to serve on the CPU instead"
            )
        return "cpu"
    kind, _, index = device.partition(":")
    if kind != "cuda" or not (index.isdigit() or index == ""):
        raise ValueError(f"unknown device {device!r}; one of auto, cpu, cuda, cuda:N")
    if not cuda:
        raise DeviceUnavailableError(f"--device {device} was asked for but {no_cuda_reason}")
    return device
