"""Layer 4: use cases that wire adapters to the core (validate, plan, store maintenance)."""
