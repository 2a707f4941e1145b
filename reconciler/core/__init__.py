"""Layer 2: pure computation (identity, desired state, planning). No I/O, no clock reads."""
