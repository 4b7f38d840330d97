"""``pinctl fleet``: judge nodes against their peers from their ``doctor --json`` reports.

A synchronized job runs at the speed of its slowest node, and the node that slows it often
passes every local check (7 GPUs where its peers have 8, an HCA at 200 Gb/s). ``shape`` turns
a report into comparable facts, ``compare`` groups a stream of reports by shape and names
the odd ones out, ``read`` streams reports from files, folders and standard input (and
reads the one reference report of ``--expect``, for fleet and doctor). Pure but for ``read``;
the cluster's own scheduler (srun, pdsh, clush) gathers the reports, not a daemon of ours.
"""
