"""Policy is data: flows/ and tasks/ hold no numeric literal but 0 and 1 (every number lives in the policy)."""

import ast
from pathlib import Path

from tests.conftest import REPO

ALLOWED = {0, 1}


def numeric_literals(source: str) -> list[tuple[int, object]]:
    """(line, value) of every int or float literal in `source` other than 0 and 1."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value not in ALLOWED:
            found.append((node.lineno, node.value))
    return found


def test_the_checker_finds_spec_numbers():
    assert numeric_literals("THRESHOLD = 0.5\nretries = 1\nwait(timeout=300)") == [(1, 0.5), (3, 300)]


def test_flows_and_tasks_take_every_number_from_the_policy():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {value}"
        for folder in ("flows", "tasks")
        for path in sorted((REPO / folder).rglob("*.py"))
        for line, value in numeric_literals(path.read_text())
    ]
    assert not offenders, "move these numbers into the policy:\n" + "\n".join(offenders)


def test_the_folders_exist():
    assert Path(REPO / "flows" / "__init__.py").exists() and Path(REPO / "tasks" / "__init__.py").exists()
