"""The shape of the code, checked: no import cycle among gridcase's modules, and domain code that
imports no framework, database or broker library (STYLE.md: business rules in plain Python)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "gridcase")
FRAMEWORKS = ("flask", "flask_smorest", "sqlalchemy", "kombu", "pika", "marshmallow", "alembic", "gunicorn")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> set[str]:
    """What a module imports when it is imported (module level, not under ``if TYPE_CHECKING``)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_module_imports_itself_through_others():
    known = modules()
    graph = {name: {d for d in imports(path) if d in known and d != name} for name, path in known.items()}
    cycles, state = [], {}

    def visit(name, trail):
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(trail[trail.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_domain_code_imports_no_framework_database_or_broker():
    offenders = {}
    for name, path in modules().items():
        if ".domain" in name:
            used = {i.split(".")[0] for i in imports(path)} & set(FRAMEWORKS)
            if used:
                offenders[name] = sorted(used)
    assert offenders == {}
