"""The controller: reconcile (observe -> decide -> act), the kopf handlers, the leader
Lease."""
