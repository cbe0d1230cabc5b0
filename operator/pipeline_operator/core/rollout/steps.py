"""Canary steps of a spec, and how they read in messages."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import (
    Canary,
    CanaryStep,
    InferencePipelineSpec,
    InferencePipelineStatus,
)
from pipeline_operator.core.revisions import canary_active


def canary_steps(spec: InferencePipelineSpec) -> list[CanaryStep]:
    """The spec's canary steps, or the default ones."""
    return (spec.rollout.canary or Canary()).steps


def scale_at(spec: InferencePipelineSpec, index: int, weight: int) -> int:
    """Percent of its replicas the canary runs at step ``index`` with traffic ``weight``: the
    last setCanaryScale step up to there, unless it matches the traffic weight."""
    for step in reversed(canary_steps(spec)[: index + 1]):
        if step.set_canary_scale is not None:
            fixed = step.set_canary_scale.weight
            return weight if fixed is None else fixed
    return weight


def describe(step: CanaryStep) -> str:
    """``setWeight 20%``, ``setCanaryScale 50``, ``pause 30s``, ``pause (until promote)``,
    ``analysis error-rate, p99`` or ``setMirror 10%``: for messages and the plugin's list of
    steps."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}%"
    if step.set_canary_scale is not None:
        fixed = step.set_canary_scale.weight
        return "setCanaryScale matchTrafficWeight" if fixed is None else f"setCanaryScale {fixed}"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause (until promote)"
    if step.analysis is not None:
        return "analysis " + ", ".join(m.name for m in step.analysis.metrics)
    if step.set_mirror is not None:
        return f"setMirror {step.set_mirror.percent}%"
    return "?"


def fraction(index: int, spec: InferencePipelineSpec) -> str:
    """``2/4``: step ``index`` counted from 1, out of the spec's steps."""
    return f"{index + 1}/{len(canary_steps(spec))}"


def position(index: int, spec: InferencePipelineSpec) -> str:
    """``step 2/4``: the 1-based position of step ``index``."""
    return f"step {fraction(index, spec)}"


def current_step(spec: InferencePipelineSpec, status: InferencePipelineStatus) -> str:
    """The canary step in progress as ``2/4`` (as ``status.message`` counts); ``-`` when no
    canary rollout is on a step (none runs, blue-green, or all steps are done)."""
    index = status.current_step_index
    if status.strategy != "Canary" or not canary_active(status) or index is None:
        return "-"
    return fraction(index, spec) if index < len(canary_steps(spec)) else "-"
