"""Layers point down: a check over the package import graph of app/ (imports parsed with `ast`).

    views / API / CLI / jobs  ->  services  ->  models / scheduling

- app/scheduling imports nothing of Flask, SQLAlchemy or app.* outside app/scheduling (pure engine);
- app/models imports no services, views, jobs or CLI;
- app/services imports no views (admin, portal, widget, REST, hooks), jobs or CLI;
- app/jobs imports no views;
- app/notifications (mailer, SMS client, templates, .ics: below services) imports no services, views or jobs;
- app/health takes the Redis connection from below, not from app/jobs;
- nothing in app/ imports the development package (devserver/) except the entry points in DEV_ENTRY_POINTS.

Every import counts, also one inside a function (a lazy import is still a dependency);
only `if TYPE_CHECKING:` blocks are skipped. `python tests/ops/test_import_graph.py [ROOT]`
prints the upward imports of a checkout.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Modules that answer requests or commands: the top layer.
VIEW_LAYER = (
    "app.views", "app.portal.views", "app.widget.views", "app.widget.api", "app.api_rest", "app.api_appointments",
    "app.api_common", "app.api_webhooks", "app.api_docs",
    "app.notifications.views", "app.meetings.hooks", "app.health", "app.cli",
)
# Run-time entry points in app/ that may use the development package.
DEV_ENTRY_POINTS = {"app/cli/seed.py"}  # `flask seed`: the demo data

RULES = [
    # (name, files under, forbidden module prefixes, allowed module prefixes)
    ("scheduling is pure", "app/scheduling", ("flask", "flask_appbuilder", "sqlalchemy", "werkzeug", "app"), ("app.scheduling",)),
    ("models import no services, views, jobs or CLI", "app/models", ("app.services", "app.jobs", *VIEW_LAYER), ()),
    ("services import no views, jobs or CLI", "app/services", ("app.jobs", *VIEW_LAYER), ()),
    ("jobs import no views", "app/jobs", VIEW_LAYER, ()),
    ("message building blocks import no services, views or jobs", "app/notifications", ("app.services", "app.jobs", *VIEW_LAYER), ()),
    ("health takes Redis from below", "app/health.py", ("app.jobs",), ()),
    ("app/ does not import the development package", "app", ("devserver",), ()),
]


def _module_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of the modules `path` imports (`from a import b` gives a.b when that is a module, else a)."""
    tree = ast.parse(path.read_text(), str(path))
    module = _module_of(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            for inner in node.body:
                skip.update(id(n) for n in ast.walk(inner))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                sub_path = root / Path(*sub.split("."))
                found.add(sub if sub_path.with_suffix(".py").exists() or (sub_path / "__init__.py").exists() else target)
    return found


def _matches(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def upward_imports(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(rule, file, imported module) for every import that runs against the layering."""
    out = []
    for rule, under, forbidden, allowed in RULES:
        base = root / under
        files = [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))
        for path in files:
            if not path.exists():
                continue
            rel = path.relative_to(root).as_posix()
            if rule.startswith("app/ does not import") and rel in DEV_ENTRY_POINTS:
                continue
            for name in sorted(imports_of(path, root)):
                if _matches(name, forbidden) and not _matches(name, allowed):
                    out.append((rule, rel, name))
    return out


def test_imports_point_down_only():
    problems = upward_imports()
    assert not problems, "imports against the layering:\n" + "\n".join(f"  {r}: {f} imports {n}" for r, f, n in problems)


def test_the_checker_finds_an_upward_import(tmp_path):
    """The check itself: a services module importing a view, a lazy jobs import and a relative one are all found."""
    for folder in ("app/services", "app/views", "app/jobs", "app/scheduling", "app/models"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "app/__init__.py").write_text("")
    (tmp_path / "app/views/desk.py").write_text("")
    (tmp_path / "app/jobs/queues.py").write_text("")
    (tmp_path / "app/services/bad.py").write_text(
        "from app.views import desk\n"
        "def f():\n    from app.jobs.queues import queue\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.views.desk import X\n")
    (tmp_path / "app/scheduling/engine.py").write_text("from ..models import base\nimport sqlalchemy\nfrom . import model\n")
    found = {(f, n) for _r, f, n in upward_imports(tmp_path)}
    assert found == {("app/services/bad.py", "app.views.desk"), ("app/services/bad.py", "app.jobs.queues"),
                     ("app/scheduling/engine.py", "app.models"), ("app/scheduling/engine.py", "sqlalchemy")}


def test_the_dev_package_is_used_only_by_its_entry_points():
    users = {f for f in (p.relative_to(ROOT).as_posix() for p in (ROOT / "app").rglob("*.py"))
             if any(_matches(n, ("devserver",)) for n in imports_of(ROOT / f))}
    assert users <= DEV_ENTRY_POINTS
    # run.py, the tests and the benches still use it.
    assert "devserver" in (ROOT / "run.py").read_text()


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    problems = upward_imports(root)
    for rule, file, name in problems:
        print(f"{rule}: {file} imports {name}")
    print(f"{len(problems)} upward import(s)")
