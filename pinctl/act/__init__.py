"""Side effects: binding syscalls, exec and supervision, re-pinning."""
