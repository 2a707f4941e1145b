"""Layer 1: pure data (specs, results, plans). Imports nothing above it."""
