"""The layering rule of driftline/layering.py, read off every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import driftline
from driftline.layering import ALLOWED, IO_LIBRARIES, KNOWN_EXCEPTIONS, PURE

ROOT = Path(driftline.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from driftline import
    detectors`` counts as ``driftline.detectors``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "driftline":
                found.update(f"driftline.{alias.name}" for alias in node.names)
    return found


def package_of(module: str) -> str | None:
    """The layer a driftline module belongs to (None: the top-level package itself)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in ALLOWED:
        return None
    return parts[1]


def violations() -> list[tuple[str, str]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        layer = package_of(module)
        if layer is None:  # driftline/__init__, __main__, layering: the package's front door
            continue
        for imported in sorted(imports(path)):
            top = imported.split(".")[0]
            if top == "driftline":
                target = package_of(imported)
                if target is not None and target != layer and target not in ALLOWED[layer]:
                    out.append((module, imported))
            elif layer in PURE and top in IO_LIBRARIES:
                out.append((module, imported))
    return out


def test_every_import_follows_the_layering_rule() -> None:
    found = violations()
    new = [v for v in found if v not in KNOWN_EXCEPTIONS]
    assert new == [], "imports driftline/layering.py does not allow"
    gone = [v for v in KNOWN_EXCEPTIONS if v not in found]
    assert gone == [], "fixed: delete these from KNOWN_EXCEPTIONS"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The reader itself: an import inside a function, and the ``from driftline import x``
    form, are both seen."""
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    import faust\n    from driftline import dashboards\n"
        "from driftline.runtime.app import create_app\n"
    )
    assert imports(module) == {
        "faust",
        "driftline",
        "driftline.dashboards",
        "driftline.runtime.app",
    }
    assert package_of("driftline.runtime.app") == "runtime"
    assert "runtime" not in ALLOWED["monitoring"] and "faust" in IO_LIBRARIES
