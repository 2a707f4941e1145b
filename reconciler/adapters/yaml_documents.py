"""Parse YAML spec files into documents that remember where every key and value was written.

Spec errors must point at FILE:LINE:COLUMN, so data from a plain YAML loader is not enough: we
use ruamel's round-trip loader, whose mappings and sequences carry `.lc` positions, keep those
objects so any validation error can be traced back to its node, and hand plain copies to
pydantic. A syntax error or a duplicate key must not hide the other problems of a spec
directory, so problems are collected as `SpecError`s, never raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from reconciler.model.errors import SpecError
from reconciler.model.specset import SourceLocation

_Position = tuple[int, int]
"""0-based (line, column), as ruamel records them."""


@dataclass(frozen=True)
class YamlDocument:
    """One non-empty document of a file: ruamel's round-trip data and where it starts."""

    content: Any
    """CommentedMap / CommentedSeq / scalar, still carrying `.lc` positions."""
    start: SourceLocation


@dataclass(frozen=True)
class ParsedFile:
    documents: list[YamlDocument]
    problems: list[SpecError]
    complete: bool
    """False when a syntax error stopped parsing: later documents of the file are unknown."""


class Part(Enum):
    """Which end of a `key: value` pair an error is about."""

    KEY = "key"
    VALUE = "value"


@dataclass(frozen=True)
class _DuplicateKey:
    key: Any
    position: _Position
    first_position: _Position | None


class _PositionKeepingConstructor(RoundTripConstructor):
    """The round-trip constructor, changed to keep going where it would stop a whole file.

    ruamel raises DuplicateKeyError at the first duplicate key and so loses every document
    after it; we record duplicates (keeping the first value) and let the loader report them all.
    It also records each document's start, which scalar documents have no `.lc` for.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duplicate_keys: list[_DuplicateKey] = []
        self.document_starts: list[_Position] = []

    def check_mapping_key(
        self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
    ) -> bool:
        if key not in mapping:
            return True
        first_position: _Position | None
        try:
            first_position = tuple(mapping.lc.key(key))
        except (KeyError, AttributeError):
            first_position = None
        self.duplicate_keys.append(
            _DuplicateKey(
                key=key,
                position=(key_node.start_mark.line, key_node.start_mark.column),
                first_position=first_position,
            )
        )
        return False

    def construct_document(self, node: Any) -> Any:
        self.document_starts.append((node.start_mark.line, node.start_mark.column))
        return super().construct_document(node)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        # Explicit tags (`!!int foo`, `!!timestamp x`) fail with bare ValueErrors that carry no
        # position; give them the node's mark so they are reported like any syntax error.
        try:
            return super().construct_object(node, deep=deep)
        except YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark
            ) from exc


def _location(file: str, position: _Position) -> SourceLocation:
    return SourceLocation(file=file, line=position[0] + 1, column=position[1] + 1)


def _offset_location(text: str, *, file: str, offset: int) -> SourceLocation:
    before = text[:offset]
    line_start = before.rfind("\n") + 1
    return SourceLocation(file=file, line=before.count("\n") + 1, column=offset - line_start + 1)


def _syntax_error(exc: YAMLError, *, text: str, file: str) -> SpecError:
    hint = "fix the YAML syntax; documents after this point in the file were not read"
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        location = _location(file, (mark.line, mark.column)) if mark else _location(file, (0, 0))
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context != problem:
            problem = f"{problem} ({exc.context})"
        return SpecError(f"YAML syntax error: {problem}", location=location, hint=hint)
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):
        location = _offset_location(text, file=file, offset=exc.position)
        return SpecError(
            f"YAML syntax error: {exc.reason}",
            location=location,
            hint="remove the control character; specs are UTF-8 text",
        )
    return SpecError(f"YAML syntax error: {exc}", location=_location(file, (0, 0)), hint=hint)


def parse_yaml_documents(text: str, *, file: str) -> ParsedFile:
    """Every non-empty document of `text`, and every problem found reading it.

    `file` is the name errors are reported under. Documents before a syntax error are kept.
    """
    yaml = YAML(typ="rt")
    yaml.Constructor = _PositionKeepingConstructor
    constructor: _PositionKeepingConstructor = yaml.constructor
    documents: list[YamlDocument] = []
    problems: list[SpecError] = []
    complete = True
    try:
        for content in yaml.load_all(text):
            if content is None:
                continue  # an empty document, e.g. between two `---`
            start = constructor.document_starts[-1]
            documents.append(YamlDocument(content=content, start=_location(file, start)))
    except YAMLError as exc:
        problems.append(_syntax_error(exc, text=text, file=file))
        complete = False
    except RecursionError:
        # ruamel recurses once per nesting level; thousands of `[` are not a spec.
        problems.append(
            SpecError(
                "YAML nesting is too deep to read",
                location=_location(file, (0, 0)),
                hint="specs nest a few levels at most: look for unbalanced brackets",
            )
        )
        complete = False
    for duplicate in constructor.duplicate_keys:
        first = (
            f"the first is at {_location(file, duplicate.first_position)}"
            if duplicate.first_position
            else "the first is earlier in the same mapping"
        )
        problems.append(
            SpecError(
                f"duplicate key {duplicate.key!r}",
                location=_location(file, duplicate.position),
                hint=f"{first}; keep one (only the first is used)",
            )
        )
    return ParsedFile(documents=documents, problems=problems, complete=complete)


def to_plain(content: Any) -> Any:
    """A copy of round-trip data made of plain dicts, lists, str, int, float and bool.

    pydantic would accept most ruamel subclasses, but it would also leak them (and their
    comment attributes) into our frozen models. Anything else (an unquoted date) is left as
    it is, so a field expecting a string reports a type error the user can fix by quoting.
    """
    if isinstance(content, dict):
        return {to_plain(key): to_plain(value) for key, value in content.items()}
    if isinstance(content, list | tuple):
        items = [to_plain(item) for item in content]
        return items if isinstance(content, list) else tuple(items)
    # ScalarBoolean (an anchored `true`) is an int subclass: test it before int.
    if isinstance(content, bool | ScalarBoolean):
        return bool(content)
    if isinstance(content, str):
        return str(content)
    if isinstance(content, int):
        return int(content)
    if isinstance(content, float):
        return float(content)
    return content


def _actual_key(container: Any, step: object) -> object:
    """The key of `container` a pydantic path step means.

    pydantic names a key that is not text by its str() (`? [a, b]` -> "('a', 'b')").
    """
    if isinstance(container, CommentedMap) and isinstance(step, str) and step not in container:
        return next((key for key in container if str(key) == step), step)
    return step


def _position_in(container: Any, step: object, *, part: Part) -> _Position | None:
    try:
        if isinstance(container, CommentedMap) and step in container:
            key_position: _Position = tuple(container.lc.key(step))
            if part is Part.KEY:
                return key_position
            value_position: _Position = tuple(container.lc.value(step))
            # An empty value (`repo:`) is marked where the next token starts, often the next
            # line; the key is where the user will look.
            if container[step] is None and value_position[0] != key_position[0]:
                return key_position
            return value_position
        if (
            isinstance(container, CommentedSeq)
            and isinstance(step, int)
            and 0 <= step < len(container)
        ):
            item_position: _Position = tuple(container.lc.item(step))
            return item_position
    except (KeyError, TypeError, AttributeError):
        # Keys merged in with `<<:` have no position of their own; unhashable or odd path
        # steps cannot be looked up. The caller falls back to the enclosing node.
        return None
    return None


def locate(document: YamlDocument, path: Sequence[object], *, part: Part) -> SourceLocation:
    """Where the node at `path` (keys and list indexes, as in a pydantic error) was written.

    With `Part.KEY` the last step's key is located instead of its value. When the path leaves
    the data (a missing key, a non-collection) the deepest node found is used.
    """
    node = document.content
    location = document.start
    for index, path_step in enumerate(path):
        step = _actual_key(node, path_step)
        is_last = index == len(path) - 1
        position = _position_in(node, step, part=part if is_last else Part.VALUE)
        if position is None:
            break
        location = _location(document.start.file, position)
        node = node[step]
    return location
