"""`python3 -m reconciler.adapters.vm.vmrun CONFIG`, where the reconciler is installed."""

import sys

from .main import main

raise SystemExit(main(sys.argv))
