"""pinctl: topology-aware process pinning for GPU nodes."""

__version__ = "0.1.0"
