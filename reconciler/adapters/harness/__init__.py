"""Harness adapters: enumerate subtests, build the batch command, parse its output."""
