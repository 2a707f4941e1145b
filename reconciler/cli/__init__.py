"""Layer 5: thin command-line entry points."""
