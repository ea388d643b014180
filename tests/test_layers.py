"""The layout's two promises, checked on the source: data flows one way (engine ← alerts ← bot), and the store layer
(`engine/store/`) is the only code that speaks SQL or holds a connection to salesintel's database. One module is
let off, by name: `engine/warehouse.py` runs the user's own query against the user's warehouse (a source, like a
CSV file), and writes no SQL of its own."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"engine": 0, "alerts": 1, "bot": 2}
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|PRAGMA)\b\s+[\w*(]")
SOURCES = {ROOT / "engine" / "warehouse.py"}
"""Modules that read from outside databases the user configures (never salesintel's store)."""


def _modules(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_each_layer_imports_only_layers_below_it():
    wrong = []
    for folder, level in LAYERS.items():
        for path in _modules(folder):
            for module in _imports(path):
                parts = module.split(".")
                if parts[0] == "salesintel" and len(parts) > 1 and LAYERS.get(parts[1], -1) > level:
                    wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, wrong


def test_only_the_store_layer_speaks_sql_or_holds_a_connection():
    store = ROOT / "engine" / "store"
    offenders = []
    for folder in LAYERS:
        for path in _modules(folder):
            if store in path.parents:
                continue
            text = path.read_text()
            if path in SOURCES:
                if "salesintel.engine.store" in " ".join(_imports(path)) or SQL.search(text):
                    offenders.append(f"{path.relative_to(ROOT)}: a source must not touch the store or write SQL")
                continue
            if "sqlite3" in _imports(path) or "sqlite_utils" in _imports(path):
                offenders.append(f"{path.relative_to(ROOT)}: imports a database driver")
            for pattern in (r"\.conn\b", r"\bstore\.db\b", r"\.execute(many)?\("):
                if re.search(pattern, text):
                    offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
            strings = [
                n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            ]
            offenders += [f"{path.relative_to(ROOT)}: SQL {s[:40]!r}" for s in strings if SQL.search(s)]
    assert not offenders, offenders


def test_the_check_would_catch_sql_outside_the_store(tmp_path):
    """The pattern is not vacuous: the ledger's old query is caught."""
    assert SQL.search("SELECT * FROM alerts WHERE id = ?")
    assert SQL.search("UPDATE outbox SET status = ? WHERE id = ?")
    assert not SQL.search("Select a deal to see its risk")
