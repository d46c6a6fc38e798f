"""Dependencies point down only: stembot -> bot, cogs / service -> wire, download, storage
-> separation, db. The service and the bot's records (storage) stand side by side on db, the
database floor, and never import each other; tests and benchmarks -> support -> the product,
and never each other. Read from the source (no module is imported), so a lazy import counts
too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each package, and the first-party packages above it that it must never import.
ABOVE = {
    "db": {"separation", "wire", "download", "storage", "service", "bot", "cogs", "stembot"},
    "separation": {"wire", "download", "storage", "service", "bot", "cogs", "stembot"},
    "wire": {"download", "storage", "service", "bot", "cogs", "stembot"},
    "download": {"wire", "storage", "service", "bot", "cogs", "stembot"},
    "storage": {"service", "bot", "cogs", "stembot"},
    "service": {"storage", "bot", "cogs", "stembot"},
    "bot": {"service", "stembot"},
    "cogs": {"service", "stembot"},
}
PRODUCT = sorted({*ABOVE, "stembot", "training"})
# The tests and the benchmarks share their helpers through `support`, which is below both.
APART = {"tests": {"benchmarks"}, "benchmarks": {"tests"}, "support": {"tests", "benchmarks"}}


def imported(path: Path) -> set[str]:
    """The top-level package of every absolute import in the file, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_no_package_imports_one_above_it(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules found in {package}/"
    wrong = {str(path.relative_to(ROOT)): sorted(imported(path) & ABOVE[package])
             for path in modules}
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_bot_imports_no_service_module() -> None:
    """The bot speaks to the job service over HTTP only, through `wire` and `download`."""
    offenders = [str(path.relative_to(ROOT)) for package in ("bot", "cogs")
                 for path in sorted((ROOT / package).rglob("*.py"))
                 if "service" in imported(path)]
    assert offenders == []


def module_names(folder: str) -> set[str]:
    """The folder's name and every module's in it: a sys.path hack would import those bare."""
    return {folder} | {path.stem for path in (ROOT / folder).rglob("*.py")}


@pytest.mark.parametrize("package", sorted(APART))
def test_tests_and_benchmarks_never_import_each_other(package: str) -> None:
    forbidden = set().union(*(module_names(other) for other in APART[package]))
    wrong = {str(path.relative_to(ROOT)): sorted(imported(path) & forbidden)
             for path in sorted((ROOT / package).rglob("*.py"))}
    assert {path: names for path, names in wrong.items() if names} == {}


@pytest.mark.parametrize("package", PRODUCT)
def test_the_product_imports_no_test_or_benchmark_code(package: str) -> None:
    wrong = {str(path.relative_to(ROOT)): sorted(imported(path) & set(APART))
             for path in sorted((ROOT / package).rglob("*.py"))}
    assert {path: names for path, names in wrong.items() if names} == {}
