"""The pure core: no I/O, no clock, no Kubernetes client.

Names and object helpers at the bottom, the planner and the rollout engine above them, and
``observe`` on top: live objects read into what the engine observes.
"""
