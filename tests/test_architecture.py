"""Architecture rules of issue #13: one-way dependencies, module and function sizes, space names in their own modules."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SPACE_NAMES = ("cvs", "mcvs", "rvs")


def _modules(*packages):
    for pkg in packages:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_the_library_never_imports_experiments_bench_or_data_prep():
    bad = []
    for p in _modules("cvs_tf"):
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{_rel(p)}:{node.lineno} {n}" for n in names
                    if n.split(".")[0] in ("experiments", "bench", "data_prep")]
    assert not bad, bad


def test_experiments_has_no_import_cycle():
    graph = {}
    for p in _modules("experiments"):
        mod = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[mod] = {d for d in deps if d.startswith("experiments") and d != mod}
    seen, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in seen or m not in graph:
            return
        stack.append(m)
        for d in sorted(graph[m]):
            visit(d)
        stack.pop()
        seen.add(m)

    for m in sorted(graph):
        visit(m)


@pytest.mark.parametrize("package", ["cvs_tf", "experiments"])
def test_module_and_function_sizes(package):
    too_long = []
    for p in _modules(package):
        text = p.read_text()
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            too_long.append(f"{_rel(p)}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{_rel(p)}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, too_long


def test_space_names_live_in_their_own_modules():
    """No string literal "cvs"/"mcvs"/"rvs" under cvs_tf/ outside the space's own module."""
    found = []
    for p in _modules("cvs_tf"):
        if re.fullmatch(r"cvs_tf/spaces/(cvs|mcvs|rvs)\.py", _rel(p)):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and node.value in SPACE_NAMES:
                found.append(f"{_rel(p)}:{node.lineno} {node.value!r}")
    assert not found, found
