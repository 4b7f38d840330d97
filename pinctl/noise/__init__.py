"""Noise: what else runs on a target's CPUs, as figures from two :class:`pinctl.kernel.counters.Sample` readings.

``figures`` turns two samples into per-target figures (foreign CPU time, offenders, interrupts,
steal, switches, memory off-policy), ``bounds`` judges them against the user's limits, ``report``
builds the JSON documents (pinctl.watch/v1, pinctl.noise/v1). Pure: no clock, no file, no process;
the readings come from pinctl.kernel.counters and the probe from pinctl.act.probe.
"""
