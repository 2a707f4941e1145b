"""When two builds with one boot image may share test results (`Reason.REUSED_SAME_IMAGE`).

Two builds of different identities can produce byte-identical kernels (a `make_flags` change
that only alters parallelism, a config line olddefconfig resolves as before). Their results for
the same runtime, harness revision, test and timeout may then be shared, on two conditions:

- both are `kbuild` builds: their image hash is the hash of the boot image, built reproducibly
  (a `command` build's "image" is only a listing of whatever it left in its checkout);
- the tests do not live in the source tree: in-tree tests (a `command` harness's scripts,
  kselftests) change with the tree even when the kernel built from it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.identity import tests_in_source_tree
from reconciler.core.kbuild import uses_kbuild


def same_image_applies(build_preimage: Mapping[str, Any], unit_preimage: Mapping[str, Any]) -> bool:
    harness = unit_preimage.get("harness")
    return (
        uses_kbuild(build_preimage)
        and isinstance(harness, Mapping)
        and not tests_in_source_tree(harness)
    )
