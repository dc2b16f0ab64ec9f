"""What a Python file imports, read from its syntax tree (nothing is executed)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO


def module_name(path: Path) -> str:
    """The dotted name of a file of the repository: ``src/`` is the import root of the package, the repository
    root that of ``tests`` and ``benchmarks``; a package's ``__init__`` keeps its ``.__init__``."""
    relative = path.resolve().relative_to(REPO)
    parts = relative.parts[1:] if relative.parts[0] == "src" else relative.parts
    return ".".join(Path(*parts).with_suffix("").parts)


def imported_modules(source: str, module: str) -> dict[str, int]:
    """Dotted name of everything ``source`` imports -> the first line importing it; ``module`` is the source's dotted
    name (a package's ``__init__`` under ``<package>.__init__``), so that relative imports resolve. ``from a import
    b`` counts as importing ``a.b``: b may be a module, and a prefix check on ``a.b`` also matches ``a``."""
    package = module.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):  # relative (level >= 1): up level - 1 packages from this one's
            base = package[: len(package) - (node.level - 1)] if node.level else []
            origin = ".".join([*base, node.module] if node.module else base)
            names = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            found.setdefault(name, node.lineno)
    return found


def imports_of(path: Path) -> dict[str, int]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path))
