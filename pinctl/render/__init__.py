"""Every text pinctl writes: terminal views (plain and rich, one TTY/NO_COLOR rule) and exports (json, env,
numactl, slurm, systemd, irqbalance, Prometheus)."""
