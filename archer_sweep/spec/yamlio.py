"""A guarded YAML loader that remembers the line of every key.

`load_yaml(path)` returns `(data, LineMap)`: plain Python data (dicts, lists,
scalars) and the 1-based line of every key path, e.g. `("search", "space",
"algorithm.entropy_coeff", "low") -> 14`, so that any later check can point at
the line that caused it. It refuses what a spec never needs and an attacker
might send: huge files, duplicate keys (PyYAML keeps the last one silently),
alias bombs (billion laughs) and bytes that are not UTF-8. Every refusal is a
`SpecError` with the file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any, Optional

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from archer_sweep.errors import SpecError

MAX_BYTES = 1_000_000
"""Biggest spec file read (a real spec is a few kB)."""
MAX_NODES = 100_000
"""Most YAML nodes after expanding aliases (an alias bomb expands exponentially)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings / lists."""


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as `1e-4` as numbers (1.1 wants `1.0e-4`)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

PLAIN_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}
"""Collection tags a spec may hold (scalars are checked by PyYAML's safe constructor)."""

Path_ = tuple  # a key path: ("search", "space", "algorithm.entropy_coeff", "low") or ("criteria", 0)


class LineMap:
    """Key path -> line (1-based), plus where the text came from (`file`)."""

    def __init__(self, file: str, lines: Optional[dict[Path_, int]] = None):
        self.file = file
        self.lines: dict[Path_, int] = dict(lines or {})
        self.sources: dict[Path_, tuple[str, int]] = {}
        """Key paths set from elsewhere -> (place, number), e.g. `("--set", 2)` for the 2nd --set."""

    def locate(self, path: Path_) -> tuple[str, int]:
        """(file, line) of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            head = path[:n]
            if head in self.sources:
                return self.sources[head]
            if head in self.lines:
                return self.file, self.lines[head]
        return self.file, 1

    def error(self, path: Path_, message: str) -> SpecError:
        """A `SpecError` located at `path`: `FILE:LINE: message`."""
        file, line = self.locate(path)
        return SpecError(file, line, message)

    def has(self, path: Path_) -> bool:
        return tuple(path) in self.lines or tuple(path) in self.sources


def read_text(path: os.PathLike | str) -> str:
    """The file's text; refuses missing, huge, binary and non-UTF-8 files."""
    name = str(path)
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise SpecError(name, 1, "is a directory (expected a sweep spec YAML file)")
        if size > MAX_BYTES:
            raise SpecError(
                name, 1, f"file is {size} bytes (expected at most {MAX_BYTES} bytes for a sweep spec)"
            )
        with open(path, "rb") as fh:  # a pipe has no size: the read itself is capped
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise SpecError(
                name,
                1,
                f"file is more than {MAX_BYTES} bytes (expected at most {MAX_BYTES} bytes for a sweep spec)",
            )
    except FileNotFoundError:
        raise SpecError(name, 1, "no such file (expected a sweep spec YAML file)") from None
    except PermissionError:
        raise SpecError(name, 1, "permission denied (expected a readable sweep spec YAML file)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            name,
            line,
            f"byte 0x{raw[exc.start]:02x} at column {col} is not UTF-8 (expected a UTF-8 text file)",
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SpecError(name, line, "NUL byte in the file (expected a text file)")
    return text.removeprefix("\ufeff")


def load_yaml(path: os.PathLike | str) -> tuple[Any, LineMap]:
    """Parse a spec file into plain data and a `LineMap` (see module doc)."""
    return parse_yaml(read_text(path), str(path))


def parse_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse YAML text (one document) into plain data and a `LineMap`."""
    lines = LineMap(file)
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        builder = _Builder(loader, lines)
        return builder.build(node, ()), lines
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError(
            file,
            mark.line + 1 if mark else 1,
            f"YAML error: {exc.problem} (expected plain values without tags)",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem:  # where the unclosed thing began
            problem += f", {exc.context} at line {exc.context_mark.line + 1}"
        raise SpecError(
            file, mark.line + 1 if mark else 1, f"YAML syntax error: {problem} (expected valid YAML)"
        ) from None
    except yaml.YAMLError as exc:  # e.g. a reader error on control characters
        raise SpecError(file, 1, f"YAML error: {str(exc).splitlines()[0]} (expected valid YAML)") from None
    finally:
        loader.dispose()


class _Builder:
    """Node graph -> Python data, recording lines, refusing duplicates and bombs."""

    def __init__(self, loader: _SpecLoader, lines: LineMap):
        self.loader, self.lines, self.count = loader, lines, 0

    def _fail(self, node: Node, message: str) -> SpecError:
        return SpecError(self.lines.file, node.start_mark.line + 1, message)

    def build(self, node: Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES:  # point at the top-level key whose value blows up
            line = self.lines.lines.get(path[:1], node.start_mark.line + 1)
            raise SpecError(
                self.lines.file,
                line,
                f"YAML expands to more than {MAX_NODES} values "
                "(expected a plain spec; aliases that multiply are refused)",
            )
        if not isinstance(node, ScalarNode) and node.tag not in PLAIN_TAGS:
            raise self._fail(
                node, f"YAML error: unsupported tag '{node.tag}' (expected plain values without tags)"
            )
        if len(path) > MAX_DEPTH:
            raise self._fail(node, f"nesting deeper than {MAX_DEPTH} levels (expected a plain spec)")
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node)
        if isinstance(node, SequenceNode):
            out = []
            for i, item in enumerate(node.value):
                self.lines.lines[path + (i,)] = item.start_mark.line + 1
                out.append(self.build(item, path + (i,)))
            return out
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        raise self._fail(node, f"unsupported YAML node {type(node).__name__}")

    def _pairs(self, node: MappingNode) -> Iterator[tuple[Node, Node, bool]]:
        """(key, value, merged) pairs; `<<: *anchor` merge keys expand into merged pairs."""
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                sources = value.value if isinstance(value, SequenceNode) else [value]
                for src in sources:
                    if not isinstance(src, MappingNode):
                        raise self._fail(src, "`<<` merges a mapping (expected an alias of a mapping)")
                    for k, v, _ in self._pairs(src):
                        yield k, v, True
            else:
                yield key, value, False

    def _mapping(self, node: MappingNode, path: Path_) -> dict:
        out: dict = {}
        explicit: dict[Any, int] = {}
        for key_node, value_node, merged in self._pairs(node):
            if not isinstance(key_node, ScalarNode):
                raise self._fail(key_node, "a key must be a plain value (expected a name)")
            key = self.loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):  # `1:`, `null:`, `yes:` are numbers/null/bools in YAML
                where = ".".join(str(p) for p in path + (key_node.value,))
                raise self._fail(
                    key_node,
                    f"{where}: key {key_node.value!r} is not a name "
                    f'(expected a string key; quote it as "{key_node.value}")',
                )
            if not merged:
                if key in explicit:
                    where = ".".join(str(p) for p in path + (key,))
                    raise self._fail(
                        key_node,
                        f"{where}: duplicate key (first at line {explicit[key]}) "
                        "(expected each key once per mapping)",
                    )
                explicit[key] = line
            elif key in explicit or key in out:
                continue  # explicit keys and earlier merges win (YAML merge semantics)
            self.lines.lines[path + (key,)] = line
            out[key] = self.build(value_node, path + (key,))
        return out
