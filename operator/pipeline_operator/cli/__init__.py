"""``kubectl-pipeline``: the kubectl plugin for InferencePipelines (``kubectl pipeline ...``).

One module per verb, each in three layers: the command wiring (``register`` and ``run``),
the API calls (through :mod:`pipeline_operator.cli.client`), and pure functions that check
the rollout state, build the patch or format the output. The pure layer is where the unit
tests are. Rollout commands are merge patches of the pipeline (an annotation or
``spec.paused``); the plugin never writes status.
"""
