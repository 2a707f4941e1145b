"""`python -m reconciler`: the same as the `reconciler` command."""

from reconciler.cli.entry import entry_point

entry_point()
