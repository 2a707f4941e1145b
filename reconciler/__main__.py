"""`python -m reconciler`: the same as the `reconciler` console script."""

from reconciler.cli.main import entry_point

entry_point()
