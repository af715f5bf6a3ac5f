"""Reading a run config: the YAML file, its problems, and typed dataclasses built from it.

:func:`read_config` reads a file (bounded in size, UTF-8, safe YAML) and reports each key set
twice; :func:`build` turns nested mappings into the config dataclasses, naming every unknown
key (with the closest known one) and every value of the wrong type. Problems are
:class:`ConfigProblem` values, raised together in one :class:`ConfigError`; :mod:`core.config`
adds what validation finds.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import reprlib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.paths import link_fix, missing_reason

MAX_LIST_ITEMS = 1000
"""More items than this in a list field is a mistake (or a YAML alias bomb), never a config."""


MAX_CONFIG_BYTES = 1024 * 1024
"""A run config is a few KB; a larger file is not read."""


_quote = reprlib.Repr()
"""Bounds what a message quotes of a value, so a huge (or alias-exploded) one stays short."""


_quote.maxlevel, _quote.maxstring, _quote.maxother, _quote.maxlong = 2, 60, 60, 40


_quote.maxlist = _quote.maxdict = _quote.maxtuple = _quote.maxset = 4


def quote(value: Any) -> str:
    """``repr(value)`` cut to a few dozen characters and a few items per level."""
    return _quote.repr(value)


@dataclass
class ConfigProblem:
    """One field that is wrong (``error``) or unusual (``warning``): the dotted ``field``
    name, what is wrong and how to fix it. Errors stop a run; warnings are shown and the run
    may go ahead."""

    field: str
    message: str
    fix: str
    severity: str = "error"
    """``error`` or ``warning``."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message} Fix: {self.fix}"

    @property
    def is_error(self) -> bool:
        """Whether this problem stops a run."""
        return self.severity == "error"


class ConfigError(ValueError):
    """Raised with every problem of a config (never just the first); only errors, as
    warnings never stop anything."""

    def __init__(self, problems: list[ConfigProblem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s){where}:\n{lines}")


def _read_config_text(path: Path) -> str:
    """The text of a config file, or ConfigError saying why it cannot be read."""
    source = str(path)

    def refuse(message: str, fix: str) -> ConfigError:
        return ConfigError([ConfigProblem("(file)", message, fix)], source)

    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except IsADirectoryError:
        raise refuse(f"{path} is a directory.", "Give the YAML file inside it, e.g. "
                     f"{path / 'config.yaml'}.") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.ELOOP:
            reason = missing_reason(path)
            fix = "Check the path." if reason == "does not exist" else link_fix(path).capitalize() + "."
            raise refuse(f"{path} {reason}.", fix) from None
        raise refuse(f"cannot read {path}: {exc.strerror or exc}.",
                     "Give a readable UTF-8 YAML file.") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise refuse(f"{path} is over {MAX_CONFIG_BYTES // 1024} KB; a run config is a few KB.",
                     "Give the run's YAML config, not a data or model file.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"cannot read {path}: not UTF-8 text (byte {exc.start}).",
                     "Give a UTF-8 YAML file.") from None


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader; :func:`_parse_yaml` checks its node tree for duplicate keys."""


def _parse_yaml(text: str) -> tuple[Any, list[ConfigProblem]]:
    """The YAML document and a problem for each key set twice in one mapping.

    YAML keeps the last of two equal keys without a word, so ``method: lora`` followed later
    by ``method: full`` would train fully; the node tree still holds both, with their lines.
    """
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        problems = _duplicate_keys(node) if node is not None else []
        return (loader.construct_document(node) if node is not None else None), problems
    finally:
        loader.dispose()


def _duplicate_keys(root: yaml.Node) -> list[ConfigProblem]:
    problems: list[tuple[int, ConfigProblem]] = []  # with the line of the second key
    seen_nodes: set[int] = set()  # an alias repeats a node: visit it once (alias bombs)
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, tuple[yaml.Node, yaml.Node]] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    name = f"{prefix}{key.value}"
                    if key.value in first:
                        before = _line_and_value(*first[key.value])
                        problems.append((key.start_mark.line, ConfigProblem(
                            _short(name),
                            f"is set twice, on line {before} and line "
                            f"{_line_and_value(key, value)}; YAML would keep only the last "
                            "value and ignore the first without a word.",
                            "Delete the line you do not mean.")))
                    else:
                        first[key.value] = (key, value)
                    stack.append((value, f"{name}."))
                else:
                    stack.append((value, prefix))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, prefix) for item in node.value)
    return [problem for _, problem in sorted(problems, key=lambda item: item[0])]


def _line_and_value(key: yaml.Node, value: yaml.Node) -> str:
    """``3 (full)``: the line of a key, and its value when that is a plain scalar."""
    line = key.start_mark.line + 1
    return f"{line} ({_short(value.value)})" if isinstance(value, yaml.ScalarNode) else str(line)


def _short(name: Any) -> str:
    """A key as a message shows it: at most 60 characters."""
    text = str(name)
    return text if len(text) <= 60 else text[:57] + "..."


def build(cls: type, data: Any, prefix: str, problems: list[ConfigProblem]) -> Any:
    """Build dataclass ``cls`` from ``data``, collecting problems instead of raising."""
    if not isinstance(data, dict):
        problems.append(ConfigProblem(prefix.rstrip(".") or "(top level)",
                                      f"must be a mapping, got {type(data).__name__}.",
                                      "Indent the section's keys under it."))
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = _short(f"{prefix}{key}")
        if key not in fields:
            # Match short forms too, so `alpah` finds `lora_alpha`.
            aliases = {**{k.split("_", 1)[-1]: k for k in fields}, **{k: k for k in fields}}
            close = difflib.get_close_matches(_short(key), list(aliases), n=1, cutoff=0.6)
            hint = f"Did you mean {aliases[close[0]]}?" if close else f"Known keys: {', '.join(fields)}."
            problems.append(ConfigProblem(name, "unknown key.", hint))
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build(hint, value, f"{name}.", problems)
            continue
        if isinstance(value, list) and len(value) > MAX_LIST_ITEMS:
            problems.append(ConfigProblem(name, f"has {len(value):,} items; no setting takes more "
                                          f"than {MAX_LIST_ITEMS:,}.", f"Give a {_type_name(hint)}."))
            continue
        item = _dataclass_items(hint)
        if item is not None:
            kwargs[key] = _build_items(item, value, name, problems)
            continue
        ok, converted = _coerce(value, hint)
        if ok:
            kwargs[key] = converted
        else:
            # quote(): the value may be huge (a YAML alias bomb expands to millions of items).
            problems.append(ConfigProblem(name, f"expected {_type_name(hint)}, got {quote(value)}.",
                                          f"Give a {_type_name(hint)}."))
    return cls(**kwargs)


def _dataclass_items(hint: Any) -> type | None:
    """The dataclass of a ``list[SomeDataclass]`` field, else ``None``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def _build_items(cls: type, value: Any, name: str, problems: list[ConfigProblem]) -> list[Any]:
    """A list of ``cls`` from a YAML list of mappings; a bare string stands for its ``path``."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(ConfigProblem(name, f"must be a list, got {type(value).__name__}.",
                                      "Write one '- path: ...' entry per item."))
        return []
    return [build(cls, {"path": item} if isinstance(item, str) else item, f"{name}[{i}].",
                   problems) for i, item in enumerate(value)]


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            if arg is not type(None):
                ok, out = _coerce(value, arg)
                if ok:
                    return True, out
        return False, None
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return False, None
        return True, list(value)
    if hint is bool:
        return (True, value) if isinstance(value, bool) else (False, None)
    if hint is int:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, None
    if hint is float:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, (int, float)):
            return True, float(value)
        if isinstance(value, str):  # YAML reads 2e-4 without a dot as a string
            try:
                return True, float(value)
            except ValueError:
                return False, None
        return False, None
    if hint is str:
        return (True, value) if isinstance(value, str) else (False, None)
    return True, value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if origin is list:
        return "list of names"
    return {bool: "true/false", int: "whole number", float: "number", str: "string"}.get(
        hint, str(hint)
    )


def read_config(path: Path) -> tuple[Any, list[ConfigProblem]]:
    """The mapping a YAML config file holds, and a problem for each key set twice.

    Raises :class:`ConfigError` for a file that cannot be read, YAML that does not parse, or a
    document that is not a mapping of sections.
    """
    source = str(path)
    text = _read_config_text(path)
    try:
        data, duplicates = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            [ConfigProblem(f"(yaml{line})",
                           f"not valid YAML: {str(exc).replace('<unicode string>', path.name)}",
                           "Correct the syntax there: indent with spaces (not tabs), put a "
                           "colon and a space after each key, close every bracket and quote.")],
            source,
        ) from None
    if data is not None and not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError(
            [ConfigProblem("(top level)", f"must be a mapping of sections, got {got}.",
                           "Write keys at the top level (method: lora, then sections such "
                           "as lora:, optim:, data: with their keys indented under them)"
                           + (", not a list: remove the leading '- '." if got == "a list"
                              else "; see the README."))],
            source,
        )
    return data, list(duplicates)
