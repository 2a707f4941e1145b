"""The summary kdevops writes into each results-archive commit message, and checking against it.

kdevops (after xfstests-bld's `gen_results_summary`) summarises a run in the commit that adds it
to the results archive:

    KERNEL:    6.6.0-rc4
    CPUS:      8

    ext4_4k: 793 tests, 2 failures, 308 skipped, 9837 seconds
      Failures: generic/001 generic/002
        generic/475
    Totals: 1586 tests, 616 skipped, 4 failures, 0 errors, 19674s

Each section line counts the section's test cases (run and skipped), failures and skips; its
`Failures:` list may wrap over indented lines. The importer cross-checks what it read from the
archive against this text, so an archive that lost files on the way is refused instead of
imported as a smaller, greener run. Lines the format does not define (CPUS, MEM, `Flaky:`
lists) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.errors import UserError

_KERNEL = re.compile(r"KERNEL:\s*(?P<kernel>\S+)\s*")
_SECTION = re.compile(
    r"(?P<section>[A-Za-z0-9_.+-]+): (?P<tests>\d+) tests?, (?P<failures>\d+) failures?"
    r"(?:, (?P<errors>\d+) errors?)?, (?P<skipped>\d+) skipped(?:, (?P<seconds>\d+) seconds?)?\s*"
)
_TOTALS = re.compile(
    r"Totals: (?P<tests>\d+) tests?, (?P<skipped>\d+) skipped, (?P<failures>\d+) failures?, "
    r"(?P<errors>\d+) errors?(?:, (?P<seconds>\d+)s)?\s*"
)
_LIST = re.compile(r"\s+(?P<label>[A-Za-z ]+):(?P<rest>.*)")


@dataclass(frozen=True)
class SectionCounts:
    tests: int
    failures: int
    skipped: int
    failed_tests: frozenset[str] = frozenset()


@dataclass
class RunSummary:
    kernel: str | None = None
    sections: dict[str, SectionCounts] = field(default_factory=dict)
    totals: SectionCounts | None = None
    """Totals' failures include its errors: the importer counts both as failures."""


def parse_summary(text: str) -> RunSummary:
    summary = RunSummary()
    section: str | None = None
    listing: str | None = None
    failed: dict[str, list[str]] = {}
    counts: dict[str, tuple[int, int, int]] = {}
    for raw in text.splitlines():
        line = raw.rstrip()
        if match := _KERNEL.fullmatch(line):
            summary.kernel = match["kernel"]
            section = listing = None
        elif match := _SECTION.fullmatch(line):
            section, listing = match["section"], None
            errors = int(match["errors"] or 0)
            failures = int(match["failures"]) + errors
            counts[section] = (int(match["tests"]), failures, int(match["skipped"]))
            failed[section] = []
        elif match := _TOTALS.fullmatch(line):
            failures = int(match["failures"]) + int(match["errors"])
            summary.totals = SectionCounts(int(match["tests"]), failures, int(match["skipped"]))
            section = listing = None
        elif section is not None and (match := _LIST.fullmatch(line)):
            listing = match["label"].strip()
            if listing == "Failures":
                failed[section].extend(match["rest"].split())
        elif section is not None and listing == "Failures" and line[:1].isspace():
            failed[section].extend(line.split())
        else:
            listing = None
    for name, (tests, failures, skipped) in counts.items():
        summary.sections[name] = SectionCounts(tests, failures, skipped, frozenset(failed[name]))
    if not summary.sections:
        raise UserError(
            "the summary has no section lines like `ext4_4k: 793 tests, 2 failures, 308 skipped,"
            " 9837 seconds`",
            hint="pass the results-archive commit message that added this archive",
        )
    return summary


def counts_of(statuses: Mapping[str, str]) -> SectionCounts:
    """Counts of one imported section: test -> status value (`pass`, `fail`, `skip`, ...)."""
    values = list(statuses.values())
    return SectionCounts(
        tests=len(values),
        failures=values.count("fail"),
        skipped=values.count("skip"),
        failed_tests=frozenset(test for test, status in statuses.items() if status == "fail"),
    )


def mismatches(
    summary: RunSummary, *, kernel: str, sections: Mapping[str, SectionCounts]
) -> list[str]:
    """Every way the imported sections of `kernel` differ from the summary; empty if none."""
    problems: list[str] = []
    if summary.kernel is not None and summary.kernel != kernel:
        problems.append(f"summary is of kernel {summary.kernel}, the archive holds {kernel}")
    for name in sorted(set(summary.sections) | set(sections)):
        said, found = summary.sections.get(name), sections.get(name)
        if said is None:
            problems.append(f"{name}: in the archive, not in the summary")
        elif found is None:
            problems.append(f"{name}: in the summary, not in the archive")
        else:
            problems.extend(_section_problems(name, said=said, found=found))
    if summary.totals is not None:
        total = SectionCounts(
            sum(s.tests for s in sections.values()),
            sum(s.failures for s in sections.values()),
            sum(s.skipped for s in sections.values()),
        )
        problems.extend(_section_problems("Totals", said=summary.totals, found=total))
    return problems


def _section_problems(name: str, *, said: SectionCounts, found: SectionCounts) -> list[str]:
    problems = [
        f"{name}: summary says {expected} {what}, the archive has {actual}"
        for what, expected, actual in (
            ("tests", said.tests, found.tests),
            ("failures", said.failures, found.failures),
            ("skipped", said.skipped, found.skipped),
        )
        if expected != actual
    ]
    if said.failed_tests and said.failed_tests != found.failed_tests:
        only_said = sorted(said.failed_tests - found.failed_tests)
        only_found = sorted(found.failed_tests - said.failed_tests)
        problems.append(
            f"{name}: failures differ (only in summary: {' '.join(only_said) or '-'}; "
            f"only in archive: {' '.join(only_found) or '-'})"
        )
    return problems
