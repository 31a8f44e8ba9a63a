"""The package's structure, checked from its source: the layers of docs/architecture.md, no import
cycles, no oversized modules or classes, a light entry point, and the old import paths.

The checks read the source with ``ast`` (as ``../shared/tools/structure.py`` does): an import inside
a function counts, an import inside an ``if TYPE_CHECKING:`` block does not. ``from . import x``
is an import of module ``x`` when ``x`` is a submodule, of the package itself otherwise.
The checker is tested on a small fake package too (``test_checker_*``), so a check cannot pass
because it sees nothing.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict, deque
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = "pytest_autoresearch"
REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / PACKAGE

#: Module-name prefix (relative to the package; "" is the package's own __init__) -> layer.
#: The longest matching prefix wins. A module that matches none fails test_layers: place it here
#: (and in docs/architecture.md) when you add it.
LAYERS: dict[str, int] = {
    "": 0,  # the package's __init__: imports nothing of the package (its alias finder uses strings)
    # 0 leaves: no package imports at all
    "names": 0,
    "errors": 0,
    "core.defaults": 0,
    "core.bounds": 0,
    "core.text": 0,
    "install_hint": 0,
    # 1 the pure core
    "core": 1,
    # 2 the operating system, and where a run's state lives (neither imports the other)
    "system": 2,
    "store": 2,
    # 3 proposals (core only)
    "proposals": 3,
    # 4 the evaluator's side and configuration
    "fitness": 4,
    "settings": 4,
    "config_file": 4,
    "options": 4,
    "hookspecs": 4,
    "trial_plugin": 4,
    "trial_guard": 4,
    "trial_state": 4,
    "trial_deadline": 4,
    "fitness_json": 4,
    "torch": 4,
    "isolate": 4,
    "timing": 4,
    "benchmark": 4,
    # 5 agents, 6 engine, 7 ui, 8 the entry point
    "agents": 5,
    "engine": 6,
    "ui": 7,
    "plugin": 8,
}

#: Narrower than "own layer or lower": (importer prefix, imported prefix, why). A prefix of "*"
#: on the right means any module of the package.
FORBIDDEN: list[tuple[str, str, str]] = [
    ("system", "store", "system knows nothing of runs: it imports nothing of store"),
    ("store", "system", "store imports only core and names"),
    ("proposals", "system", "proposals are pure text work: core only"),
    ("proposals", "store", "proposals are pure text work: core only"),
    *[(side, "store", "the evaluator's side and configuration import core, system and proposals, not store")
      for side in ("fitness", "settings", "options", "hookspecs", "trial_plugin", "trial_guard", "trial_state", "trial_deadline", "fitness_json", "torch", "isolate", "timing", "benchmark")],
    ("agents", "store", "agents import core, system, proposals and settings only"),
    *[("agents", side, "agents import core, system, proposals and settings only")
      for side in ("fitness", "hookspecs", "trial_plugin", "fitness_json", "torch", "isolate", "timing", "benchmark")],
]

#: What the entry point may not import at module level (ui only inside functions; agents and
#: engine are never needed at load time either, see test_plugin_loads_light).
PLUGIN_LAZY = ("ui", "engine", "agents")

MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 300


# --- the checker ------------------------------------------------------------------------------


class Edge(NamedTuple):
    src: str  # module names relative to the package ("" is the package itself)
    dst: str
    path: Path
    lineno: int
    in_function: bool

    def where(self) -> str:
        return f"{self.path}:{self.lineno}{' (in a function)' if self.in_function else ''}"


def dotted(name: str, package: str) -> str:
    return f"{package}.{name}" if name else package


def modules_of(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``, by its name relative to the package."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement and whether it sits inside a function; TYPE_CHECKING bodies skipped."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append((node, in_function))
        if _type_checking(node):
            children: list[ast.AST] = [node.test, *node.orelse]  # the body is for type checkers only
        else:
            children = list(ast.iter_child_nodes(node))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in children:
            visit(child, inner)

    visit(tree, False)
    return found


def import_edges(root: Path) -> tuple[dict[str, Path], list[Edge]]:
    """The package's modules and every import of one of its modules by another."""
    package = root.name
    mods = modules_of(root)
    edges = []
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if name else []
        pkg_parts = here if is_pkg else here[:-1]
        for node, in_function in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == package or alias.name.startswith(package + "."):
                        targets.append(alias.name[len(package) + 1:])
            else:
                if node.level:
                    if node.level - 1 > len(pkg_parts):
                        continue  # above the package: not ours
                    base = pkg_parts[: len(pkg_parts) - (node.level - 1)]
                    frm = ".".join(base + ([node.module] if node.module else []))
                elif node.module == package or (node.module or "").startswith(package + "."):
                    frm = node.module[len(package) + 1:]
                else:
                    continue
                for alias in node.names:
                    sub = f"{frm}.{alias.name}" if frm else alias.name
                    targets.append(sub if sub in mods else frm)
            for target in dict.fromkeys(targets):  # one edge per imported module per statement
                if target != name:
                    edges.append(Edge(name, target, path, node.lineno, in_function))
    return mods, edges


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        graph[e.src].add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(sccs)


def describe_cycle(component: list[str], edges: list[Edge], package: str) -> str:
    """One shortest cycle through the component's first module, each step with its import line,
    then every import inside the component."""
    inside = set(component)
    first: dict[tuple[str, str], Edge] = {}
    for e in edges:
        if e.src in inside and e.dst in inside:
            first.setdefault((e.src, e.dst), e)
    start = component[0]
    parent: dict[str, str] = {}
    queue = deque([start])
    path: list[str] = []
    while queue and not path:
        v = queue.popleft()
        for (a, b) in sorted(first):
            if a != v:
                continue
            if b == start:
                path = [start]
                while v != start:
                    path.insert(1, v)
                    v = parent[v]
                path.append(start)
                break
            if b not in parent and b != start:
                parent[b] = v
                queue.append(b)
    lines = [f"cycle of {len(component)} modules: " + " -> ".join(dotted(m, package) for m in path)]
    lines += [f"    {dotted(a, package)} -> {dotted(b, package)}  at {first[a, b].where()}" for a, b in zip(path, path[1:])]
    lines.append("  all imports inside it:")
    lines += [f"    {dotted(a, package)} -> {dotted(b, package)}  at {e.where()}" for (a, b), e in sorted(first.items())]
    return "\n".join(lines)


def _matches(name: str, prefix: str) -> bool:
    if prefix == "":
        return name == ""
    return name == prefix or name.startswith(prefix + ".")


def layer_key(name: str, layers: dict[str, int]) -> str | None:
    keys = [k for k in layers if _matches(name, k)]
    return max(keys, key=len) if keys else None


def layer_violations(mods: dict[str, Path], edges: list[Edge], layers: dict[str, int] = LAYERS,
                     forbidden: list[tuple[str, str, str]] = FORBIDDEN, package: str = PACKAGE) -> list[str]:
    """Every module the table does not place, and every import that breaks the rule."""
    problems = []
    for name in sorted(set(mods) | {e.dst for e in edges}):
        if layer_key(name, layers) is None:
            where = mods.get(name) or next(e.where() for e in edges if e.dst == name)
            problems.append(f"{dotted(name, package)} ({where}) has no layer: add it to the layer table")
    for e in edges:
        src_key, dst_key = layer_key(e.src, layers), layer_key(e.dst, layers)
        if src_key is None or dst_key is None:
            continue
        src_layer, dst_layer = layers[src_key], layers[dst_key]
        arrow = f"{dotted(e.src, package)} -> {dotted(e.dst, package)} at {e.where()}"
        if src_layer == 0:
            problems.append(f"{arrow}: a leaf (layer 0) imports nothing of the package")
        elif dst_layer > src_layer:
            problems.append(f"{arrow}: layer {src_layer} ({src_key or 'package'}) imports layer {dst_layer} ({dst_key})")
        for src_prefix, dst_prefix, why in forbidden:
            if _matches(e.src, src_prefix) and (dst_prefix == "*" or _matches(e.dst, dst_prefix)):
                problems.append(f"{arrow}: {why}")
        if _matches(e.src, "hookspecs"):
            problems.append(f"{arrow}: hookspecs imports the package under TYPE_CHECKING only")
        if _matches(e.src, "agents") and e.src != "agents" and e.dst == "agents":
            problems.append(f"{arrow}: an agents submodule imports agents.base, never the package face")
        if e.src == "plugin" and not e.in_function and any(_matches(e.dst, lazy) for lazy in PLUGIN_LAZY):
            problems.append(f"{arrow}: the entry point imports {dst_key} only inside a function")
    return problems


#: What the pure core (and the leaves) must not import: pytest, git, processes, the file system.
IMPURE = ("pytest", "_pytest", "pluggy", "git", "subprocess", "os", "shutil", "tempfile", "socket",
          "signal", "ctypes", "resource", "multiprocessing", "io", "sqlite3")


def impurities(mods: dict[str, Path], layers: dict[str, int] = LAYERS, package: str = PACKAGE) -> list[str]:
    problems = []
    for name, path in mods.items():
        key = layer_key(name, layers)
        if key is None or layers[key] > 1 or name == "":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node, _ in _imports(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else ([node.module or ""] if not node.level else [])
            for imported in names:
                if imported.split(".")[0] in IMPURE:
                    problems.append(f"{dotted(name, package)} imports {imported} at {path}:{node.lineno}: the core is pure")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                problems.append(f"{dotted(name, package)} calls open() at {path}:{node.lineno}: the core does no I/O")
    return problems


def oversized(mods: dict[str, Path], package: str = PACKAGE) -> list[str]:
    problems = []
    for name, path in mods.items():
        source = path.read_text()
        count = len(source.splitlines())
        if count > MAX_MODULE_LINES:
            problems.append(f"module {dotted(name, package)} ({path}): {count} lines > {MAX_MODULE_LINES}")
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    problems.append(f"class {dotted(name, package)}.{node.name} ({path}:{node.lineno}): {size} lines > {MAX_CLASS_LINES}")
    return problems


# --- the package ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scanned() -> tuple[dict[str, Path], list[Edge]]:
    mods, edges = import_edges(ROOT)
    assert len(mods) > 20 and len(edges) > 50, "the checker found almost nothing: is ROOT right?"
    return mods, edges


def test_no_import_cycles(scanned: tuple[dict[str, Path], list[Edge]]) -> None:
    _, edges = scanned
    cycles = find_cycles(edges)
    report = "\n".join(describe_cycle(c, edges, PACKAGE) for c in cycles)
    print(report)
    assert not cycles, f"{len(cycles)} import cycle(s):\n{report}"


def test_layers(scanned: tuple[dict[str, Path], list[Edge]]) -> None:
    mods, edges = scanned
    problems = layer_violations(mods, edges)
    assert not problems, f"{len(problems)} layer problem(s) (docs/architecture.md has the rule):\n" + "\n".join(problems)


def test_core_is_pure(scanned: tuple[dict[str, Path], list[Edge]]) -> None:
    mods, _ = scanned
    problems = impurities(mods)
    assert not problems, "\n".join(problems)


def test_sizes(scanned: tuple[dict[str, Path], list[Edge]]) -> None:
    mods, _ = scanned
    problems = oversized(mods)
    assert not problems, "\n".join(problems)


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_AUTORESEARCH")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


HEAVY = ("litellm", "torch", "git", "tabulate", "ray", "matplotlib", "optuna", "sqlalchemy")


def test_plugin_loads_light() -> None:
    done = _fresh_python("""
        import json, sys
        import pytest_autoresearch.plugin
        print(json.dumps(sorted(sys.modules)))
    """)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"{PACKAGE}.plugin" in loaded
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    ours = [m for m in loaded if any(m == f"{PACKAGE}.{p}" or m.startswith(f"{PACKAGE}.{p}.") for p in ("engine", "ui", "agents"))]
    assert not heavy and not ours, f"import {PACKAGE}.plugin loads {heavy + ours}"


def _moved() -> dict[str, str]:
    """MOVED as the package's __init__ writes it (read from the source: no import needed)."""
    tree = ast.parse((ROOT / "__init__.py").read_text())
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(t, ast.Name) and t.id == "MOVED" for t in targets):
            return ast.literal_eval(node.value)
    raise AssertionError("pytest_autoresearch/__init__.py defines no MOVED map")


@pytest.mark.parametrize(("old", "new"), sorted(_moved().items()))
def test_old_path_is_the_new_module(old: str, new: str) -> None:
    done = _fresh_python(f"""
        import importlib, sys
        import {PACKAGE}.{old} as by_import
        from {PACKAGE} import {old} as by_from
        old = importlib.import_module("{PACKAGE}.{old}")
        new = importlib.import_module("{PACKAGE}.{new}")
        assert by_import is by_from is old is new, (by_import, by_from, old, new)
        assert sys.modules["{PACKAGE}.{old}"] is new
        assert new.__name__ == new.__spec__.name == "{PACKAGE}.{new}", (new.__name__, new.__spec__.name)
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr or done.stdout


PUBLIC = [
    ("from pytest_autoresearch.decision import Decision", "pytest_autoresearch.core.verdict", ["Decision"]),
    ("from pytest_autoresearch.records import TrialRecord, MetricSpec", "pytest_autoresearch.core.records", ["TrialRecord", "MetricSpec"]),
    ("from pytest_autoresearch.noise import Noise", "pytest_autoresearch.core.noise", ["Noise"]),
    ("from pytest_autoresearch.proposal import Proposal", "pytest_autoresearch.proposals.proposal", ["Proposal"]),
    ("from pytest_autoresearch.agents import Agent, ProposalContext, AgentError, AgentExhausted",
     "pytest_autoresearch.agents.base", ["Agent", "ProposalContext", "AgentError", "AgentExhausted"]),
    ("from pytest_autoresearch.agents import Proposal", "pytest_autoresearch.proposals.proposal", ["Proposal"]),
]


@pytest.mark.parametrize(("statement", "home", "names"), PUBLIC, ids=[p[0].split(" import ")[0][5:] + ":" + ",".join(p[2]) for p in PUBLIC])
def test_public_names(statement: str, home: str, names: list[str]) -> None:
    done = _fresh_python(f"""
        import importlib
        {statement}
        home = importlib.import_module("{home}")
        for name in {names!r}:
            assert globals()[name] is getattr(home, name), name
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr or done.stdout


# --- the checker on a fake package (so the checks above cannot pass vacuously) ------------------

FAKE = {
    "__init__.py": "",
    "names.py": "from . import errors\n",  # a leaf importing the package
    "errors.py": "",
    "core/__init__.py": "",
    "core/records.py": """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ..ui import driver  # not an import at run time: no edge
        X = 1
        def later():
            from ..engine import loop  # core -> engine, and it closes a cycle
    """,
    "engine/__init__.py": "",
    "engine/loop.py": "from ..core.records import X\nfrom .. import names\n",
    "ui/__init__.py": "",
    "ui/driver.py": "from ..engine import loop\n",
    "agents/__init__.py": "from .base import Agent\n",
    "agents/base.py": "from ..core import records\nclass Agent: pass\n",
    "agents/mutate.py": "from . import Agent\n",  # the package face, not agents.base
    "store/__init__.py": "",
    "store/log.py": "from ..system import procs\n",  # store -> system
    "system/__init__.py": "",
    "system/procs.py": "import os\n",
    "hookspecs.py": "from .core import records\n",  # at run time
    "plugin.py": "from . import names\nfrom .ui import driver\ndef configure():\n    from .ui.driver import loop\n",
    "mystery.py": "",
}


def write_fake(tmp_path: Path) -> Path:
    root = tmp_path / "fakepkg"
    for rel, text in FAKE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


def test_checker_resolves_imports(tmp_path: Path) -> None:
    mods, edges = import_edges(write_fake(tmp_path))
    pairs = {(e.src, e.dst, e.in_function) for e in edges}
    assert ("engine.loop", "names", False) in pairs  # from .. import names: the submodule
    assert ("engine.loop", "core.records", False) in pairs
    assert ("agents.mutate", "agents", False) in pairs  # from . import Agent: the package itself
    assert ("core.records", "engine.loop", True) in pairs  # inside a function: counts
    assert ("plugin", "ui.driver", True) in pairs and ("plugin", "ui.driver", False) in pairs
    assert not any(e.src == "core.records" and e.dst.startswith("ui") for e in edges)  # TYPE_CHECKING


def test_checker_finds_a_cycle(tmp_path: Path) -> None:
    mods, edges = import_edges(write_fake(tmp_path))
    cycles = find_cycles(edges)
    assert cycles == [["core.records", "engine.loop"]]
    text = describe_cycle(cycles[0], edges, "fakepkg")
    assert "fakepkg.core.records -> fakepkg.engine.loop -> fakepkg.core.records" in text
    assert "records.py:6 (in a function)" in text


def test_checker_finds_layer_violations(tmp_path: Path) -> None:
    mods, edges = import_edges(write_fake(tmp_path))
    problems = layer_violations(mods, edges, package="fakepkg")
    expected = {
        "fakepkg.names -> fakepkg.errors": "a leaf (layer 0) imports nothing",
        "fakepkg.core.records -> fakepkg.engine.loop": "layer 1 (core) imports layer 6 (engine)",
        "fakepkg.agents.mutate -> fakepkg.agents": "never the package face",
        "fakepkg.store.log -> fakepkg.system.procs": "store imports only core and names",
        "fakepkg.hookspecs -> fakepkg.core.records": "TYPE_CHECKING only",
        "fakepkg.plugin -> fakepkg.ui.driver at": "only inside a function",
        "fakepkg.mystery": "add it to the layer table",
    }
    for arrow, why in expected.items():
        assert any(p.startswith(arrow) and why in p for p in problems), (arrow, why, problems)
    assert len(problems) == len(expected), "\n".join(problems)  # nothing else: the clean imports pass
    assert not any(p.startswith("fakepkg.plugin") and "(in a function)" in p for p in problems)


def test_checker_finds_impurity_and_size(tmp_path: Path) -> None:
    root = write_fake(tmp_path)
    (root / "core" / "disk.py").write_text("import subprocess\ndef read(p):\n    return open(p).read()\n")
    (root / "engine" / "big.py").write_text("class Big:\n" + "    x = 1\n" * MAX_CLASS_LINES + "\n" * MAX_MODULE_LINES)
    mods = modules_of(root)
    pure = impurities(mods, package="fakepkg")
    assert any("core.disk imports subprocess" in p for p in pure) and any("calls open()" in p for p in pure), pure
    assert not any("system.procs" in p for p in pure)  # os is fine outside the core
    sizes = oversized(mods, package="fakepkg")
    assert any(p.startswith("module fakepkg.engine.big") for p in sizes) and any("class fakepkg.engine.big.Big" in p for p in sizes), sizes


#: The modules that may name a trial's status as a value: the verdict chooses, the records define
#: the enum, the results log reads the word back from a file.
STATUS_CHOOSERS = {"core.verdict", "core.records", "store.results_log"}


def status_choices(root: Path) -> list[str]:
    """Places outside :data:`STATUS_CHOOSERS` that set a status: ``x.status = ...``,
    ``status=...`` in a call, or a ``TrialRecord(n, STATUS, ...)`` call."""
    found = []
    for name, path in modules_of(root).items():
        if name in STATUS_CHOOSERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "status" for t in node.targets):
                found.append(f"{name}:{node.lineno} assigns a status")
            elif isinstance(node, ast.Call):
                callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if any(k.arg == "status" for k in node.keywords) and callee != "pytest_autoresearch_trial_logged":
                    found.append(f"{name}:{node.lineno} passes status=")
                elif callee == "TrialRecord" and len(node.args) >= 2:
                    found.append(f"{name}:{node.lineno} makes a TrialRecord with a status")
    return found


def test_a_status_is_chosen_only_by_the_verdict() -> None:
    assert status_choices(ROOT) == [], "only core.verdict chooses a status; call one of its functions instead"


def test_checker_finds_a_status_chosen_elsewhere(tmp_path: Path) -> None:
    root = tmp_path / "fakepkg"
    (root / "engine").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "engine" / "__init__.py").write_text("")
    (root / "engine" / "loop.py").write_text("def f(r, TrialRecord):\n    r.status = 'keep'\n    return TrialRecord(1, 'crash', 'x')\n")
    assert status_choices(root) == [
        "engine.loop:2 assigns a status",
        "engine.loop:3 makes a TrialRecord with a status",
    ]
