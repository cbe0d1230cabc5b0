"""Live objects -> observations (pure): readiness, routing, pods, drift, snapshots and
refused writes, read from what the watches cached."""
