"""The kit's evaluation job: a labelled set sent to the stable and the canary revision of a
pipeline, each revision's accuracy and their agreement judged against thresholds, the exit
code the analysis' verdict (``python -m pipeline_evaluation``; see evaluation/README.md).

Standard library only: the image installs nothing beside this package.
"""
