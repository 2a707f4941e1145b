"""Did the kernel get the config its profile asked for? A check of the resolved `.config`.

`merge_config.sh` writes a profile's fragment over the base config and `make olddefconfig`
resolves the result, quietly: an option whose dependencies are not met is turned off, and an
option the tree does not know is dropped. On tinyconfig, `CONFIG_TMPFS=y` simply vanishes
(TMPFS depends on SHMEM). A kernel built from that is not the one the profile names, its tests
say nothing about the option, and its build identity claims an input it never had. So every
requested option is looked up in the resolved `.config`, and a build whose config differs fails
with a log saying which option, why, and what to change:

- *unknown*: no Kconfig file of the tree defines the symbol (for this architecture);
- *not applied*: the tree defines it, but olddefconfig resolved another value (a dependency is
  not met, something selects it, or the value is out of range).

`=n` is satisfied by `# CONFIG_X is not set` or by the option's absence. Pure: the `.config`
text and what `grep` found in the Kconfig files come in as strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
_DEFINITION = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_ENTRY_END = re.compile(r"^\s*(?:(?:menu)?config|choice|endchoice|menu|endmenu|if|endif|source)\b")
_DEPENDS = re.compile(r"^\s*depends\s+on\s+(.+?)\s*$")
_SYMBOL = re.compile(r"(?<![!A-Za-z0-9_])[A-Z0-9_]*[A-Z][A-Z0-9_]*(?![A-Za-z0-9_])")
"""A symbol in a `depends on` expression, not negated (`!X` is met when X is off)."""


def parse_config(text: str) -> dict[str, str]:
    """`.config` as {CONFIG_X: value}; `# CONFIG_X is not set` reads as `n`."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if match := _SET.match(line):
            values[match.group(1)] = match.group(2)
        elif match := _UNSET.match(line):
            values[match.group(1)] = "n"
    return values


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _same_value(requested: str, resolved: str) -> bool:
    if requested == resolved or _unquoted(requested) == _unquoted(resolved):
        return True
    try:  # Kconfig writes hex symbols with a 0x prefix whether or not the fragment had one
        return int(requested, 0) == int(resolved, 0)
    except ValueError:
        return False


def _satisfied(requested: str, resolved: str | None) -> bool:
    if requested == "n":
        return resolved in (None, "n")
    return resolved is not None and _same_value(requested, resolved)


def requested_options(fragment: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for line in fragment:
        name, _, value = line.partition("=")
        options[name if name.startswith("CONFIG_") else f"CONFIG_{name}"] = value
    return options


def unmet_options(fragment: Sequence[str], config_text: str) -> list[str]:
    """The options (`CONFIG_X`) of `fragment` the resolved `.config` does not have as asked."""
    resolved = parse_config(config_text)
    return [
        name
        for name, value in requested_options(fragment).items()
        if not _satisfied(value, resolved.get(name))
    ]


@dataclass(frozen=True)
class KconfigEntry:
    """One definition of a symbol in a Kconfig file."""

    location: str
    """`path:line`, relative to the tree."""
    depends: tuple[str, ...] = ()
    """Its `depends on` expressions (not those of enclosing `if` or `menu` blocks)."""


def kconfig_definitions(grep_output: str, *, srcarch: str) -> dict[str, list[KconfigEntry]]:
    """Definitions found by `grep -rnZ -A<n>` over the Kconfig files, keeping those that apply
    to `srcarch` (outside `arch/`, or under `arch/<srcarch>/`)."""
    found: dict[str, list[KconfigEntry]] = {}
    current: tuple[str, str, str, list[str]] | None = None  # symbol, path, line, depends

    def close() -> None:
        if current is not None:
            symbol, path, line, depends = current
            found.setdefault(symbol, []).append(KconfigEntry(f"{path}:{line}", tuple(depends)))

    for raw in grep_output.splitlines():
        path, nul, rest = raw.partition("\0")
        match = re.match(r"^(\d+)([:-])(.*)$", rest) if nul else None
        if match is None:
            continue
        path = path.removeprefix("./")
        number, separator, text = match.groups()
        definition = _DEFINITION.match(text) if separator == ":" else None
        if definition is not None:
            close()
            current = (definition.group(1), path, number, [])
        elif current is not None and path == current[1]:
            if _ENTRY_END.match(text):
                close()
                current = None
            elif depends := _DEPENDS.match(text):
                current[3].append(depends.group(1))
    close()
    own = f"arch/{srcarch}/"
    applying = {
        symbol: [
            e for e in entries if e.location.startswith(own) or not e.location.startswith("arch/")
        ]
        for symbol, entries in found.items()
    }
    return {symbol: entries for symbol, entries in applying.items() if entries}


class ProblemKind(StrEnum):
    UNKNOWN = "unknown"
    """No Kconfig file of the tree defines the symbol for this architecture."""
    NOT_APPLIED = "not-applied"
    """The tree defines it; olddefconfig resolved another value."""


@dataclass(frozen=True)
class FragmentProblem:
    option: str
    """`CONFIG_X`."""
    requested: str
    resolved: str | None
    """The value in the resolved `.config` (`n` when not set); None when absent."""
    kind: ProblemKind
    definitions: tuple[KconfigEntry, ...] = ()


def check_fragment(
    fragment: Sequence[str],
    config_text: str,
    defined: Mapping[str, Sequence[KconfigEntry]],
) -> list[FragmentProblem]:
    """Every option of `fragment` the resolved `.config` lacks, with why, in fragment order.

    `defined` maps Kconfig symbols (no `CONFIG_` prefix) to where the tree defines them; it need
    only hold the symbols of `unmet_options`.
    """
    resolved = parse_config(config_text)
    problems: list[FragmentProblem] = []
    for name, value in requested_options(fragment).items():
        have = resolved.get(name)
        if _satisfied(value, have):
            continue
        entries = tuple(defined.get(name.removeprefix("CONFIG_"), ()))
        kind = ProblemKind.NOT_APPLIED if entries else ProblemKind.UNKNOWN
        problems.append(FragmentProblem(name, value, have, kind, entries))
    return problems


def _shown_value(value: str | None) -> str:
    return "not set" if value in (None, "n") else f"={value}"


def _dependencies(entry: KconfigEntry, resolved: Mapping[str, str]) -> str:
    shown = []
    for expression in entry.depends:
        off = [
            s
            for s in dict.fromkeys(_SYMBOL.findall(expression))
            if resolved.get(f"CONFIG_{s}", "n") == "n"
        ]
        note = f" ({', '.join(f'CONFIG_{s}' for s in off)} not set)" if off else ""
        shown.append(f"`depends on {expression}`{note}")
    return "; ".join(shown)


def describe_problems(
    problems: Sequence[FragmentProblem], *, config_text: str, arch: str, base_config: str
) -> str:
    """The log text of a failed check: each option, why, and what to change in the profile."""
    resolved = parse_config(config_text)
    lines = [
        f"kbuild: the resolved .config lacks {len(problems)} option(s) the profile's kconfig "
        f"asks for (base {base_config}, ARCH {arch}); the kernel was not built:"
    ]
    for problem in problems:
        asked = f"{problem.option}={problem.requested}"
        symbol = problem.option.removeprefix("CONFIG_")
        if problem.kind is ProblemKind.UNKNOWN:
            lines.append(
                f"  {asked}: unknown to this tree: no Kconfig file defines {symbol} for {arch}"
                " (misspelt, renamed, removed, or only on another architecture);"
                " fix or remove it in the profile's kconfig"
            )
            continue
        where = ", ".join(e.location for e in problem.definitions)
        if problem.requested == "n":
            why = "another enabled option selects it, or it cannot be turned off here"
        elif problem.resolved in (None, "n"):
            why = "a dependency is not met, or it has no prompt and nothing selects it"
        else:
            why = "the value is not one it can take here (range, type or choice)"
        lines.append(
            f"  {asked}: olddefconfig left it {_shown_value(problem.resolved)}: {why}."
            f" Defined at {where}"
        )
        depends = "; ".join(
            text for e in problem.definitions if (text := _dependencies(e, resolved))
        )
        if depends:
            lines.append(f"      {depends}")
        lines.append(
            "      add what it needs to the profile's kconfig (or drop the option); "
            "`make menuconfig` and `/` then the name show all its dependencies"
        )
    return "\n".join(lines) + "\n"
