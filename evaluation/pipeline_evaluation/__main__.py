"""``python -m pipeline_evaluation``: the evaluation job's entry point."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
