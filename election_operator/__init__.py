"""election-operator: an ansible-runner loop that reconciles the custom resources of a
`watches.yaml` (ansible-operator's format), only on the replica that holds the lock."""

__version__ = "0.1.0"
