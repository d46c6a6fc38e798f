"""The docs stay true to the code: every setting the code reads is explained once in
.env.example (the generated settings table's meanings) with the code's own default, and the
README's links to the docs resolve. (CI builds the site itself with `mkdocs build --strict`.)"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from docs.hooks import settings_table
from docs.hooks.settings_table import Computed, Reference

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_the_code_reads_is_explained_once_in_env_example() -> None:
    read = set(settings_table.first_readings())
    rows = settings_table.explained()
    names = [row.name for row in rows]
    assert sorted(read - set(names)) == [], "read by the code, missing from .env.example"
    assert sorted(set(names) - read) == [], "in .env.example, read by no code"
    assert [name for name, count in Counter(names).items() if count > 1] == []
    assert [row.name for row in rows if len(row.meaning) < 10] == [], "no meaning above it"


def test_the_generated_table_has_each_setting_once_with_a_default() -> None:
    page = settings_table.render()
    for name in settings_table.first_readings():
        assert len(re.findall(rf"\| <span id=\"[a-z0-9-]+\"></span>`{name}` \|", page)) == 1
    assert "(not read by the code)" not in page
    assert "Not in .env.example" not in page


def _same(code: object, text: str) -> bool:
    if isinstance(code, bool):
        return text.lower() == str(code).lower()
    if isinstance(code, int | float):
        return float(text) == float(code)
    return text == code or Path(text) == Path(str(code))


def test_one_default_per_setting_in_the_code_and_in_env_example() -> None:
    readings = settings_table.first_readings()
    for name, found in readings.items():
        plain = {str(r.default) for r in found
                 if r.default is not None and not isinstance(r.default, Computed | Reference)}
        assert len(plain) <= 1, f"{name} has several defaults in the code: {found}"
    for row in settings_table.explained():
        default = readings[row.name][0].default
        if row.value is None or isinstance(default, Computed | Reference):
            continue
        assert _same(default, row.value), (row.name, row.value, default)


def test_the_readme_keeps_its_two_commands_and_its_links_to_the_docs_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert lines[0] == "# stembot"
    assert lines[3].startswith("bash scripts/setup && .venv/bin/stembot up ")
    assert lines[4].startswith("bash scripts/setup && .venv/bin/python -m pytest -q ")
    assert ".venv/bin/python -m pytest -q" in readme
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    assert any(t.startswith("docs/") for t in local)
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_the_docs_pages_link_only_to_pages_that_exist() -> None:
    """mkdocs --strict checks this when CI builds the site; here the same for a quick run."""
    docs = ROOT / "docs"
    generated = docs / settings_table.PAGE
    missing = []
    for page in docs.rglob("*.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#")[0]
            if path and not re.match(r"[a-z]+:", path):
                resolved = (page.parent / path).resolve()
                if not resolved.exists() and resolved != generated.resolve():
                    missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert missing == []
