"""vmrun as one shell command: its modules' sources inside a small loader, for `python3 -c`.

Why not copy files to the worker: a worker offers "run a shell command" and "read a file",
nothing that writes one, and a file left behind could be stale next time. So each batch carries
the program itself. The loader registers the modules as a package named `vmrun` in dependency
order, so their relative imports resolve as they do in this package; the program then calls
`vmrun.main.main(sys.argv)`. It is about 40 kB, far below Linux's 128 kB limit on one argument.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from reconciler.adapters.vm.vmrun import SHIPPED_MODULES

_LOADER = """\
import sys, types
package = types.ModuleType("vmrun")
package.__path__ = []
sys.modules["vmrun"] = package
for name, source in {sources}:
    module = types.ModuleType("vmrun." + name)
    module.__package__ = "vmrun"
    sys.modules[module.__name__] = module
    exec(compile(source, "vmrun/" + name + ".py", "exec"), module.__dict__)
sys.exit(sys.modules["vmrun.main"].main(sys.argv))
"""


@cache
def vmrun_program() -> str:
    """The Python source to pass to `python3 -c`, followed by CONFIG."""
    package = resources.files("reconciler.adapters.vm.vmrun")
    sources = [(name, (package / f"{name}.py").read_text()) for name in SHIPPED_MODULES]
    return _LOADER.format(sources=repr(sources))


def vmrun_command(config: Mapping[str, Any], *, python: str = "python3") -> str:
    """A shell command running vmrun with `config`, every part shell-quoted."""
    arguments = [python, "-c", vmrun_program(), json.dumps(config, sort_keys=True)]
    return " ".join(shlex.quote(argument) for argument in arguments)
