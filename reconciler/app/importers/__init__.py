"""Importers: existing fstests, ktest and kdevops results brought into the store.

Old baselines are worth reusing exactly where their identity matches what the plan asks, and
nowhere else. A *matched* import (`--specs --branch B --commit REV | --baseline NAME`, with
`--profile` and optionally `--group`) asks the planner for that slot's units and gives each
imported test the identity the plan asks for, so `reconciler plan` then shows it as reused; a
test the slot does not ask for is reported and skipped, a desired test the files lack stays
missing. An *unmatched* import records what it is told (kernel tree or version, config hash,
arch, section, fstype), every other input as `"unknown"`, and an `"imported"` marker, so it can
never be taken for a planned result; it is an archive for queries and compare. See `identity`.

Readers (`fstests`, `ktest`, `kdevops`) turn files into `ImportedOutcome`s; `records` stages
every record in memory and writes only after everything validated, so a bad input leaves the
store untouched; `run` is the use case the CLI calls.
"""

from reconciler.app.importers.identity import UNKNOWN, KnownInputs, config_file_sha256
from reconciler.app.importers.records import ImportReport, render_report
from reconciler.app.importers.run import ImportKind, ImportRequest, run_import
from reconciler.app.importers.slots import MatchRequest

__all__ = [
    "UNKNOWN",
    "ImportKind",
    "ImportReport",
    "ImportRequest",
    "KnownInputs",
    "MatchRequest",
    "config_file_sha256",
    "render_report",
    "run_import",
]
