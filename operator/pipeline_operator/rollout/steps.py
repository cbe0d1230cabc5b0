"""Canary steps of a spec, and how they read in messages."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import Canary, CanaryStep, InferencePipelineSpec


def canary_steps(spec: InferencePipelineSpec) -> list[CanaryStep]:
    """The spec's canary steps, or the default ones."""
    return (spec.rollout.canary or Canary()).steps


def describe(step: CanaryStep) -> str:
    """``setWeight 20``, ``pause 30s``, ``pause`` or ``analysis``."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause"
    return "analysis"


def position(index: int, spec: InferencePipelineSpec) -> str:
    """``step 2/4``: the 1-based position of step ``index``."""
    return f"step {index + 1}/{len(canary_steps(spec))}"
