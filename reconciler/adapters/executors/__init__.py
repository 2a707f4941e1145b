"""Executors: transports that run shell commands on worker hosts (local slots, SSH hosts)."""
