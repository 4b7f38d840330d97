"""Kernel facts: the only code that names /sys and /proc paths."""
