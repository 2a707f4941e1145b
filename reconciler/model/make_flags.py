"""What a Profile's `make_flags` may say, and how they reach make as one `MAKEFLAGS` value.

make is a language: a flag is not just a word. `-t` touches every target instead of building
it (a "passing" build that compiled nothing), `--eval` and `-f` run any makefile text,
`SHELL=` picks the program every recipe runs with, and a value with `$(shell …)` runs a
command when it is expanded. And in `MAKEFLAGS`, the only channel a `command` harness's build
command can be given flags through, a first word without `-` is read as option *letters*
(`X=1` as `-X -= -1`). So:

- options are an allow-list of what changes scheduling or verbosity, not what is built:
  `-jN`/`--jobs[=N]`, `-lN`/`--load-average[=N]`, `-k`/`--keep-going`, `-s`/`--silent`,
  `--no-print-directory`, `-O[mode]`/`--output-sync[=mode]`;
- variable definitions are `NAME=value` with a plain name that is not one of make's own
  (`SHELL`, `MAKEFLAGS`, `MAKEFILES`, …) and a value without `$`, backquotes, backslashes or
  control characters;
- `makeflags_value` puts the options first and the definitions after ` -- `, as make writes
  MAKEFLAGS itself, with spaces in values escaped.

Pure data rules: used by the model (validate) and by the recipes that build.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_OPTIONS = re.compile(
    r"-j[0-9]*|--jobs(=[0-9]+)?|-l[0-9.]*|--load-average(=[0-9.]+)?|-k|--keep-going|-s|--silent"
    r"|--no-print-directory|-O(target|line|recurse|none)?|--output-sync(=(target|line|recurse|none))?"
)
_DEFINITION = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.DOTALL)
_UNSAFE_VALUE = re.compile(r"[$`\\\x00-\x1f\x7f]")
MAKE_OWN_VARIABLES = frozenset(
    {
        "SHELL",
        "MAKE",
        "MAKEFLAGS",
        "MFLAGS",
        "GNUMAKEFLAGS",
        "MAKEFILES",
        "MAKEOVERRIDES",
        "MAKECMDGOALS",
        "MAKELEVEL",
        "MAKEFILE_LIST",
        "MAKESHELL",
        "VPATH",
    }
)
ALLOWED = (
    "-jN, --jobs=N, -lN, --load-average=N, -k, --keep-going, -s, --silent,"
    " --no-print-directory, -O[mode], --output-sync=mode, or NAME=value"
)


def make_flag_problem(flag: str) -> str | None:
    """Why `flag` may not be given to make, or None when it may."""
    if flag.startswith("-"):
        if _OPTIONS.fullmatch(flag):
            return None
        return f"make option {flag!r} is not one a profile may give (allowed: {ALLOWED})"
    definition = _DEFINITION.fullmatch(flag)
    if definition is None:
        return f"{flag!r} is neither a make option nor a NAME=value definition ({ALLOWED})"
    if definition["name"] in MAKE_OWN_VARIABLES:
        return f"{definition['name']} is make's own variable; a profile may not set it"
    if _UNSAFE_VALUE.search(definition["value"]):
        return (
            f"the value of {definition['name']} holds `$`, a backquote, a backslash or a control"
            " character, which make or the shell would expand; write a plain value"
        )
    return None


def makeflags_value(flags: Sequence[str]) -> str:
    """One MAKEFLAGS value: options, then ` -- ` and the definitions, spaces escaped."""
    options = [flag for flag in flags if flag.startswith("-")]
    definitions = [flag.replace(" ", "\\ ") for flag in flags if not flag.startswith("-")]
    if not definitions:
        return " ".join(options)
    return " ".join([*options, "--", *definitions])
