"""The docs' one table of settings (operators/settings.md), made when the site is built.

One definition of each fact: the names and defaults come from the code that reads them (the
AST of every `env_int`/`env_float`/`env_bool`/`env_choice`/`os.environ.get` call in the
packages, defaults evaluated as the code would), the meanings and the order from the comments
of `.env.example`, which operators copy and read anyway. Nothing is written twice by hand, so
the table cannot fall behind the code; tests/test_docs.py fails when the code reads a setting
that `.env.example` does not explain, or when the two disagree on a default.

Used by MkDocs as a hook (`hooks:` in mkdocs.yml): the page is generated, never committed.
"""

from __future__ import annotations

import ast
import enum
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = "operators/settings.md"
# Scanned in this order; the first reading of a name gives the table its default.
PARTS = {"separation": "engine", "service": "service", "download": "service",
         "bot": "bot", "cogs": "bot", "storage": "bot", "wire": "service", "stembot": "CLI"}
_NAME = re.compile(r"^(?:#\s*)?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)=(.*)$")
_SETTING = re.compile(r"(?<![\w`$])((?:STEMBOT|BOT|DISCORD|AWS)_[A-Z0-9_]*[A-Z0-9])\b")
_ENV_FUNCS = {"env_int": 0, "env_float": 0, "env_bool": 0, "env_choice": 1}


class Computed:
    """A default the code computes when it runs (shown as the code that computes it)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Computed) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


@dataclass(frozen=True)
class Reference:
    """A default that is another setting's value."""

    name: str


Default = str | int | float | bool | None | Computed | Reference


@dataclass(frozen=True)
class Reading:
    """One place in the code that reads a setting."""

    name: str
    default: Default
    where: str  # path:line
    part: str  # engine, service, bot, CLI


@dataclass(frozen=True)
class Explained:
    """A setting as `.env.example` explains it."""

    name: str
    section: str
    meaning: str
    value: str | None  # the value of an uncommented line (which says it is the default)


def _env_read(node: ast.AST) -> tuple[ast.expr, ast.expr | None] | None:
    """(name, default) of an expression that reads the environment, else None."""
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
        return node.slice, None
    if not isinstance(node, ast.Call):
        return None
    func = ast.unparse(node.func)
    if func in _ENV_FUNCS:
        index = _ENV_FUNCS[func]
        if len(node.args) > index + 1:
            return node.args[index], node.args[index + 1]
        return None
    if func in ("os.environ.get", "os.getenv") and node.args:
        return node.args[0], node.args[1] if len(node.args) > 1 else None
    return None


def _plain(value: object, source: str) -> Default:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return Computed(source)


class _Module:
    """The readings in one module, defaults evaluated in the module's own namespace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rel = path.relative_to(ROOT).as_posix()
        self.tree = ast.parse(path.read_text(), self.rel)
        self.parents = {child: node for node in ast.walk(self.tree)
                        for child in ast.iter_child_nodes(node)}
        self._namespace: dict[str, Any] | None = None

    def namespace(self) -> dict[str, Any]:
        if self._namespace is None:
            name = self.rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            self._namespace = dict(vars(importlib.import_module(name)))
        return self._namespace

    def enclosing(self, node: ast.AST, kind: type[ast.AST]) -> Any:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, kind):
                return node
        return None

    def locals_of(self, function: ast.FunctionDef | None) -> dict[str, Any]:
        """The function's namespace for defaults: `cls`, and plain instances it makes."""
        names = dict(self.namespace())
        if function is None:
            return names
        cls = self.enclosing(function, ast.ClassDef)
        if cls is not None:
            names["cls"] = names.get(cls.name)
        for statement in function.body:
            if not isinstance(statement, ast.Assign):
                continue
            values = [call for call in ast.walk(statement.value) if isinstance(call, ast.Call)]
            if values and all(not (c.args or c.keywords) and isinstance(c.func, ast.Name)
                              for c in values):
                exec(compile(ast.Module([statement], []), self.rel, "exec"), names)
        return names

    def bound_to_read(self, name: str, function: ast.FunctionDef | None) -> str | None:
        """The setting a local variable holds, when it is assigned one read straight."""
        for node in ast.walk(function or self.tree):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name):
                read = _env_read(node.value)
                if read and isinstance(read[0], ast.Constant):
                    return str(read[0].value)
        return None

    def default(self, node: ast.AST, expr: ast.expr | None,
                function: ast.FunctionDef | None) -> Default:
        if expr is None:  # os.environ.get(NAME) or <default>
            parent = self.parents.get(node)
            if isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.Or):
                index = parent.values.index(node)  # type: ignore[arg-type]
                if index + 1 < len(parent.values):
                    return self.default(parent.values[index + 1], parent.values[index + 1],
                                        function) if _env_read(parent.values[index + 1]) is None \
                        else self._reference(parent.values[index + 1])
            return None
        if _env_read(expr) is not None:
            return self._reference(expr)
        if isinstance(expr, ast.Name) and (bound := self.bound_to_read(expr.id, function)):
            return Reference(bound)
        source = ast.unparse(expr)
        if any(isinstance(part, ast.Call) for part in ast.walk(expr)):
            return Computed(source)
        try:
            value = eval(compile(ast.Expression(expr), self.rel, "eval"),
                         self.locals_of(function))
        except Exception:
            return Computed(source)
        return _plain(value, source)

    def _reference(self, expr: ast.expr) -> Default:
        read = _env_read(expr)
        assert read is not None
        if isinstance(read[0], ast.Constant):
            return Reference(str(read[0].value))
        return Computed(ast.unparse(expr))

    def readings(self, part: str) -> Iterator[Reading]:
        helpers: dict[str, tuple[int, ast.AST, ast.expr | None, ast.FunctionDef]] = {}
        for node in ast.walk(self.tree):
            read = _env_read(node)
            if read is None:
                continue
            name, default = read
            function = self.enclosing(node, ast.FunctionDef)
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                yield Reading(name.value, self.default(node, default, function),
                              f"{self.rel}:{node.lineno}", part)  # type: ignore[attr-defined]
            elif isinstance(name, ast.Name) and function is not None:
                params = [arg.arg for arg in function.args.args]
                if name.id in params and function.name not in ("env_int", "env_float",
                                                                "env_bool", "env_choice"):
                    helpers[function.name] = (params.index(name.id), node, default, function)
        for node in ast.walk(self.tree):  # helpers called with a setting's name
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in helpers):
                index, read_node, default, function = helpers[node.func.id]
                if len(node.args) > index and isinstance(node.args[index], ast.Constant):
                    yield Reading(str(node.args[index].value),  # type: ignore[attr-defined]
                                  self.default(read_node, default, function),
                                  f"{self.rel}:{node.lineno}", part)


def readings() -> list[Reading]:
    """Every place the packages read a setting, in PARTS order."""
    found: list[Reading] = []
    for package, part in PARTS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "env.py" and package == "separation":
                continue  # the typed readers themselves
            found.extend(_Module(path).readings(part))
    return found


def explained(path: Path = ROOT / ".env.example") -> list[Explained]:
    """The settings of `.env.example` in order, each with the comment block above it."""
    found: list[Explained] = []
    section, after_setting = "", False
    block: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line:
            block, after_setting = [], False
            continue
        if line.startswith("# ---"):
            section = line.strip("#- ").strip()
            block, after_setting = [], False
            continue
        if match := _NAME.match(line):
            value = None if line.startswith("#") else match.group(2).strip()
            found.append(Explained(match.group(1), section, " ".join(block), value))
            after_setting = True
            continue
        if line.startswith("#"):
            if after_setting:
                block, after_setting = [], False
            block.append(line.lstrip("#").strip())
    return found


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")
    return _SETTING.sub(lambda m: f"`{m.group(1)}`", text)


def _show(default: Default) -> str:
    if isinstance(default, Reference):
        return f"`{default.name}`'s value"
    if isinstance(default, Computed):
        return f"computed: `{default.source}`"
    if default is None or default == "":
        return "empty"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def first_readings() -> dict[str, list[Reading]]:
    by_name: dict[str, list[Reading]] = {}
    for reading in readings():
        by_name.setdefault(reading.name, []).append(reading)
    return by_name


def render() -> str:
    by_name = first_readings()
    rows = explained()
    out = [
        "# Settings",
        "",
        "Every setting, once. Each is read from the environment, or from `.env` in the"
        " directory a `stembot` command starts in (copy `.env.example`, which lists them all"
        " with these defaults; the environment wins over `.env`). This page is generated"
        " when the site is built (`docs/hooks/settings_table.py`): the names, defaults and"
        " readers come from the code that reads the settings, the meanings and their order"
        " from the comments of `.env.example`.",
        "",
        "A value a setting cannot take stops any command with one line, e.g. `error:"
        " STEMBOT_WORKERS must be a whole number, not 'two'`, and status 1.",
        "",
    ]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            out += ["", f"## {section[0].upper()}{section[1:]}" if section else "## Settings",
                    "", "| setting | default | read by | meaning |", "|---|---|---|---|"]
        found = by_name.get(row.name, [])
        default = _show(found[0].default) if found else "(not read by the code)"
        parts = ", ".join(dict.fromkeys(reading.part for reading in found)) or "–"
        anchor = row.name.lower().replace("_", "-")
        out.append(f'| <span id="{anchor}"></span>`{row.name}` | {default} | {parts} |'
                   f" {_cell(row.meaning)} |")
    missing = sorted(set(by_name) - {row.name for row in rows})
    if missing:
        out += ["", "## Not in .env.example", "", "| setting | default | read by |",
                "|---|---|---|"]
        out += [f"| `{name}` | {_show(by_name[name][0].default)} | {by_name[name][0].where} |"
                for name in missing]
    return "\n".join(out) + "\n"


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files
