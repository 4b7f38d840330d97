"""The plan file's contract: THE Plan type (``types``), its checks for untrusted input (``fields``),
the environment a file may set (``allowlist``), the node's CPU classes (``cpuclasses``), reading a file (``load``).

Below the planner: the planner builds a Plan, launch loads one, and neither is needed by the other.
"""
