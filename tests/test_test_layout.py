"""The tests' own layout: no test module imports another, conftest's fixtures are not redefined, training is marked."""

import ast
import functools
import importlib.util
from pathlib import Path
from types import SimpleNamespace

from tests.helpers import trains_summary

TESTS = Path(__file__).resolve().parent
#: calls that train a model once a test reaches them (tests/helpers.py and the tests' own helper modules)
TRAINING_HELPERS = {"Trainer", "train_tiny_run", "train_source"}
#: methods that take gradient steps: ``model.fit(...)`` and Keras's own step functions
STEP_METHODS = {"fit", "make_train_function", "train_step", "train_on_batch"}


def _modules():
    return sorted(TESTS.rglob("*.py"))


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imported(path: Path, tree: ast.Module) -> set[str]:
    """Every module name an import in ``path`` may bind (``from a import b`` gives ``a`` and ``a.b``)."""
    package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            names |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return names


def _is_fixture(fn) -> str | None:
    """The fixture name ``fn`` registers, or None when it is not decorated with ``pytest.fixture``."""
    for d in fn.decorator_list:
        call = d if isinstance(d, ast.Call) else None
        target = call.func if call else d
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            named = [k.value.value for k in (call.keywords if call else []) if k.arg == "name"]
            return named[0] if named else fn.name
    return None


def _conftest_fixtures() -> set[str]:
    tree = _tree(TESTS / "conftest.py")
    return {n for fn in tree.body if isinstance(fn, ast.FunctionDef) and (n := _is_fixture(fn))}


def test_no_test_module_imports_another_test_module_or_conftest():
    bad = []
    for path in _modules():
        for name in _imported(path, _tree(path)):
            last = name.rsplit(".", 1)[-1]
            if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                bad.append(f"{path.relative_to(TESTS)}: {name}")
    assert not bad, "shared code belongs in tests/helpers.py or a helper module, not a test module:\n" + "\n".join(bad)


def test_the_import_check_resolves_relative_and_from_imports():
    tree = ast.parse("from .test_train import Crash\nfrom ..helpers import dir_tree\nfrom tests.cli import test_tune\n")
    got = _imported(TESTS / "cli" / "test_x.py", tree)
    assert {"tests.cli.test_train", "tests.helpers.dir_tree", "tests.cli.test_tune"} <= got


def test_no_module_redefines_or_shadows_a_conftest_fixture():
    shared = _conftest_fixtures()
    assert {"toy", "toy_path", "toy_set", "make_toy", "shared_toy", "tiny_run", "tiny_export"} <= shared
    bad = []
    for path in _modules():
        if path == TESTS / "conftest.py":
            continue
        tree = _tree(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and _is_fixture(node) in shared:
                bad.append(f"{path.relative_to(TESTS)}:{node.lineno}: fixture {_is_fixture(node)}")
        for node in tree.body:  # a module-level name hides the fixture from readers (and from helpers' callers)
            defined = ([node.name] if isinstance(node, ast.FunctionDef | ast.ClassDef) else
                       [a.asname or a.name for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(TESTS)}:{node.lineno}: {n}" for n in defined if n in shared]
    assert not bad, "use the conftest fixture (with @pytest.mark.toy(...) for other sizes):\n" + "\n".join(bad)


def _train_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to the train CLI's ``main`` and to the ``cvs_tf.cli.train`` module."""
    mains, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "cvs_tf.cli.train":
            mains |= {a.asname or a.name for a in node.names if a.name == "main"}
        elif isinstance(node, ast.ImportFrom) and node.module == "cvs_tf.cli":
            modules |= {a.asname or a.name for a in node.names if a.name == "train"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == "cvs_tf.cli.train" and a.asname}
    return mains, modules


def _trains(node: ast.AST, mains: set, modules: set) -> bool:
    """Whether ``node`` calls fit, Trainer, the train CLI (in-process or ``python -m cvs_tf.train``) or a helper that does."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in STEP_METHODS and isinstance(f, ast.Attribute) or name in TRAINING_HELPERS:
                return True
        if isinstance(n, ast.Name) and n.id in mains and isinstance(n.ctx, ast.Load):
            return True
        if isinstance(n, ast.Attribute) and n.attr == "main" and isinstance(n.value, ast.Name) and n.value.id in modules:
            return True
        if isinstance(n, ast.Constant) and n.value == "cvs_tf.train":
            return True
    return False


def _marked(decorators) -> bool:
    return any("trains" in ast.unparse(d) for d in decorators)


def _unmarked_training(path: Path) -> list[str]:
    """Where ``path`` trains without the ``trains`` marker: on the module, or on each test function that trains."""
    tree = _tree(path)
    mains, modules = _train_aliases(tree)
    module_mark = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                      and "trains" in ast.unparse(n.value) for n in tree.body)
    if module_mark:
        return []
    tests = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    inside = {id(x) for t in tests for x in ast.walk(t)}
    outside = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and id(n) not in inside
               and _trains(n, mains, modules)]
    if outside:  # a fixture or helper trains: any test may reach it
        return [f"{path.relative_to(TESTS)}:{outside[0].lineno}: {outside[0].name} trains; mark the module"]
    return [f"{path.relative_to(TESTS)}:{t.lineno}: {t.name}" for t in tests
            if _trains(t, mains, modules) and not _marked(t.decorator_list)]


def test_tests_that_train_carry_the_trains_marker():
    bad = [w for p in _modules() if p.name.startswith("test_") and p != Path(__file__) for w in _unmarked_training(p)]
    assert not bad, "mark with @pytest.mark.trains (or pytestmark = pytest.mark.trains):\n" + "\n".join(bad)


def test_the_training_check_sees_each_way_of_training():
    cases = {"model.fit(x)": True, "Trainer(cfg, out).run()": True, "main(['--out', 'x'])": True,
             "train_cli.main(argv)": True, "run_cli(train_cli.main, argv)": True, "train_tiny_run(out, ds)": True,
             "subprocess.run([sys.executable, '-m', 'cvs_tf.train'])": True, "main_other(x)": False,
             "fit(x)": False, "model.train_on_batch(x, y)": True, "evaluate_cli.main(argv)": False}
    for code, want in cases.items():
        src = f"from cvs_tf.cli.train import main\nfrom cvs_tf.cli import train as train_cli\n{code}\n"
        tree = ast.parse(src)
        mains, modules = _train_aliases(tree)
        assert _trains(ast.Module(tree.body[2:], []), mains, modules) == want, code


def test_the_trains_line_sums_the_marked_tests_phases():
    def rep(nodeid, when, duration, trains):
        return SimpleNamespace(nodeid=nodeid, when=when, duration=duration, keywords={"trains": 1} if trains else {})

    stats = {"passed": [rep("a", "call", 2.0, True), rep("b", "call", 1.5, False)],
             "": [rep("a", "setup", 3.0, True), rep("a", "teardown", 0.2, True), rep("b", "setup", 0.5, False)],
             "deselected": [SimpleNamespace(nodeid="c")]}
    assert trains_summary(stats) == "trains: 1 tests, 5.2 s of 7.2 s"
    assert trains_summary({}) is None
