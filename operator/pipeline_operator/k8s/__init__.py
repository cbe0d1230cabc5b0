"""The only layer that calls the Kubernetes API: the client (writes and the few direct reads),
the watches (informers) and the cache they fill."""
