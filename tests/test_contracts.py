"""The layout's own rules, checked on the tree: every core module is under the core import
contract, and no room grows past what a newcomer can hold in mind."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES, MAX_CLASS_LINES = 500, 300


def _core_modules() -> set[str]:
    core = ROOT / "cfbench"
    modules = {f"cfbench.{p.stem}" for p in core.glob("*.py") if p.stem != "__init__"}
    return modules | {
        f"cfbench.{p.name}"
        for p in core.iterdir()
        if not p.is_symlink() and (p / "__init__.py").exists()
    }


def test_every_core_module_is_under_the_core_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = next(c for c in contracts["contracts"] if c["name"].startswith("Core reaches"))
    missing = _core_modules() - set(core["source_modules"])
    assert not missing, f"add {sorted(missing)} to the core contract in pyproject.toml"


def _sources():
    for folder in ("cfbench", "methods", "metrics", "tasks", "components", "experiments"):
        for path in (ROOT / folder).rglob("*.py"):
            if not any(p.is_symlink() for p in path.relative_to(ROOT).parents if p != Path(".")):
                yield path


def test_no_module_or_class_outgrows_its_room():
    too_long = []
    for path in _sources():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}: class {node.name} {lines} lines")
    assert not too_long, too_long
