"""Launch-time facts read from this process's environment and the kernel: which rank am I (``localrank``),
the job's world (``world``), and does a plan fit this node (``fit``)."""
