"""Architecture rules: no import cycle (imports inside functions count), the layer order of docs/architecture.md,
module and function sizes, space names in their own modules."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SPACE_NAMES = ("cvs", "mcvs", "rvs")
DEFAULT_SPACE_LINE = 'DEFAULT_SPACE = "cvs"'  # config.py names the default space (the one place it may)

# The layers of cvs_tf, bottom first, as docs/architecture.md draws them; a module imports only its own
# layer or lower ones. "pkg.*" is a package and its modules; a plain name is one module; the longest
# matching pattern places a module. The root package ``cvs_tf`` (imported before any of its modules) is exempt.
LAYERS = (
    ("utilities", ("cvs_tf.config", "cvs_tf.utils.*")),
    ("data", ("cvs_tf.data.*",)),
    ("layers", ("cvs_tf.layers.*", "cvs_tf.data.encoders.*", "cvs_tf.data.extract", "cvs_tf.data.extract_spec")),
    ("losses", ("cvs_tf.losses.*",)),
    ("models", ("cvs_tf.models.*",)),
    ("spaces", ("cvs_tf.spaces.*", "cvs_tf.models", "cvs_tf.models.factory", "cvs_tf.registries", "cvs_tf.plan")),
    ("runs", ("cvs_tf.training.run_dir", "cvs_tf.training.lock", "cvs_tf.loading")),
    ("evaluation", ("cvs_tf.evaluation.*", "cvs_tf.report.*")),
    ("serving", ("cvs_tf.serving.*", "cvs_tf.retrieval.*")),
    ("training", ("cvs_tf.training.*", "cvs_tf.presets.*", "cvs_tf.tuning.*")),
    ("entry points", ("cvs_tf.cli.*", "cvs_tf.data.__main__", "cvs_tf._startup", "cvs_tf.demo", "cvs_tf.embed_beam",
                      "cvs_tf.evaluate", "cvs_tf.export", "cvs_tf.index", "cvs_tf.search", "cvs_tf.train",
                      "cvs_tf.tune", "cvs_tf.report.__main__")),
)


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


def _module_name(p: Path) -> str:
    return ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, anywhere in its body (inside functions too).

    ``from pkg import name`` counts as an import of ``pkg.name`` where that is a module, else of ``pkg``;
    relative imports are resolved. A package's own ``__init__`` is not counted as imported by its modules.
    """
    files = {_module_name(p): p for p in _modules(package)}
    graph = {}
    for mod, p in files.items():
        here = mod if p.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                deps |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        graph[mod] = {d for d in deps if d in files and d != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    seen, stack = set(), []

    def visit(m):
        if m in stack:
            return stack[stack.index(m):] + [m]
        if m in seen:
            return None
        stack.append(m)
        for d in sorted(graph[m]):
            cycle = visit(d)
            if cycle:
                return cycle
        stack.pop()
        seen.add(m)
        return None

    for m in sorted(graph):
        cycle = visit(m)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_sees_imports_inside_functions(tmp_path):
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert find_cycle(graph) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({**graph, "p.c": set()}) is None
    deps = import_graph("cvs_tf")
    assert "cvs_tf.losses.registry" in deps["cvs_tf.registries"]  # imported inside check_loss_kind
    assert "cvs_tf.data.summary" in deps["cvs_tf.cli.data_import"]  # imported inside run
    assert "cvs_tf.tuning.trial" in deps["cvs_tf.tuning.report"]  # a plain module-level import


def test_the_config_imports_only_its_loader():
    """config.py is a leaf: the registries that check its names are above it (cvs_tf/registries.py)."""
    assert import_graph("cvs_tf")["cvs_tf.config"] == {"cvs_tf.utils.typed"}
    assert import_graph("cvs_tf")["cvs_tf.utils.typed"] == set()


@pytest.mark.parametrize("package", ["cvs_tf", "experiments"])
def test_no_import_cycle(package):
    cycle = find_cycle(import_graph(package))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of ``module``'s layer (its longest matching pattern), or None."""
    best = None
    for i, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            package = pattern.removesuffix(".*")
            hit = module == package or (pattern.endswith(".*") and module.startswith(package + "."))
            rank = len(package) + (0 if pattern.endswith(".*") else 0.5)  # a named module beats its package
            if hit and (best is None or rank > best[1]):
                best = (i, rank)
    return None if best is None else best[0]


def test_every_module_has_a_layer_and_no_layer_imports_a_higher_one():
    graph = import_graph("cvs_tf")
    assert not [m for m in graph if m != "cvs_tf" and layer_of(m) is None]
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
              for a in sorted(graph) if a != "cvs_tf" for b in sorted(graph[a])
              if b != "cvs_tf" and layer_of(b) > layer_of(a)]
    assert not upward, upward


def test_the_layer_table_is_the_documented_one():
    """docs/architecture.md's diagram names the layers top first, in LAYERS' order reversed."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    diagram = text.split("```")[1]
    names = {name for name, _ in LAYERS}
    drawn = [m.group(1) for line in diagram.splitlines() if (m := re.match(r"  ([a-z][a-z ]*?)  ", line))
             and m.group(1) in names]
    assert drawn == [name for name, _ in reversed(LAYERS)]


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
        text = p.read_text()
        if _rel(p) == "cvs_tf/config.py":
            assert text.count(DEFAULT_SPACE_LINE) == 1
            text = text.replace(DEFAULT_SPACE_LINE, "DEFAULT_SPACE = None")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value in SPACE_NAMES:
                found.append(f"{_rel(p)}:{node.lineno} {node.value!r}")
    assert not found, found
