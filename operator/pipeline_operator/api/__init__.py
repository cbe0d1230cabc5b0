"""The InferencePipeline API (v1alpha1), defined once as pydantic models."""

from pipeline_operator.api.v1alpha1 import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    InferencePipelineSpec,
    InferencePipelineStatus,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "InferencePipelineSpec",
    "InferencePipelineStatus",
]
