"""The import rule of docs/architecture.md, read from the source: every module of app/ sits in a layer package,
a layer imports only its own and lower layers (config < storage < core < api; ops and the factory anything),
and ncf/ is a library that imports nothing of app/."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RANKS = {"config": 0, "storage": 1, "core": 2, "api": 3, "ops": 4}
TOP = max(RANKS.values())  # the ops layer and the factory (app/__init__.py) may import any layer


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `source`, function-local ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from app.core import resources` imports the module app.core.resources
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def rank(module: str) -> int | None:
    """The layer rank of an app module (the factory `app` ranks with ops); None outside app/."""
    parts = module.split(".")
    if parts[0] != "app":
        return None
    return RANKS.get(parts[1], TOP) if len(parts) > 1 else TOP


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """`module name → (source, is package)`: the imports that break the rule, as readable lines."""
    found = []
    for name, (source, package) in sorted(sources.items()):
        if name.startswith("app.") and name.split(".")[1] not in RANKS:
            found.append(f"{name} sits outside the layer packages {sorted(RANKS)}")
        own = rank(name)
        for line, target in imported_modules(source, name, package):
            target_rank = rank(target)
            if target_rank is None:
                continue
            if name.split(".")[0] == "ncf":
                found.append(f"{name}:{line} imports {target}: ncf is a library, app adapts to it")
            elif own is not None and own < TOP and target_rank > own:
                found.append(f"{name}:{line} imports {target}, a higher layer")
    return found


def project_sources() -> dict[str, tuple[str, bool]]:
    paths = [*(ROOT / "app").rglob("*.py"), *(ROOT / "ncf").rglob("*.py")]
    return {module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py") for path in paths}


def test_app_and_ncf_keep_the_import_rule():
    assert violations(project_sources()) == []


def test_an_upward_import_is_reported():
    sources = {
        "app.storage.products": ("from app.api.metrics import TimedMilvusClient\n", False),
        "app.core.ranker": ("def main():\n    from app import create_app\n", False),
        "app.api.facets": ("from ..core.resources import resources\nfrom ..storage import refine\n", False),
        "app.ops.cli": ("from app import create_app\nfrom app.api import openapi\n", False),
        "app.stray": ("", False),
        "ncf.data": ("from app.storage.events import events\n", False),
    }
    assert violations(sources) == [
        "app.core.ranker:2 imports app.create_app, a higher layer",
        "app.storage.products:1 imports app.api.metrics.TimedMilvusClient, a higher layer",
        "app.stray sits outside the layer packages ['api', 'config', 'core', 'ops', 'storage']",
        "ncf.data:1 imports app.storage.events.events: ncf is a library, app adapts to it",
    ]
