"""The package layout is the pipeline: spec -> layers -> analysis -> views | backend, and the
imports go that way only (a lazy import inside a function counts too)."""
import ast
import functools
from pathlib import Path

import archcalc

PACKAGE = Path(archcalc.__file__).parent
# each room may import from the rooms listed (and from itself)
ALLOWED = {
    "base": set(),  # errors, units, fileio, gcpause, choices
    "layers": {"base"},
    "spec": {"base", "layers"},
    "analysis": {"base", "layers", "spec"},
    "views": {"base", "layers", "spec", "analysis"},
    "backend": {"base", "layers", "spec", "analysis"},
    "cli": {"base", "layers", "spec", "analysis", "views", "backend"},
}
ROOMS = {"layers", "spec", "analysis", "views", "backend"}


def room_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself: its lazy namespace
        return "cli"
    if parts[1] in ROOMS:
        return parts[1]
    return "cli" if parts[1] in ("cli", "__main__") else "base"


def module_name(path: Path) -> tuple[str, bool]:
    parts = ("archcalc", *path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The module's syntax tree, parsed once for the three tests (each walks every module)."""
    return ast.parse(path.read_text())


def imports(path: Path):
    """(imported archcalc module, line, at module level?) for every import in the file."""
    name, is_package = module_name(path)
    tree = parsed(path)
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("archcalc"):
                # 'from . import views' names modules: count each
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or \
                        (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                    yield (sub if is_module else target), node.lineno, id(node) in top_level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("archcalc"):
                    yield alias.name, node.lineno, id(node) in top_level


def all_modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_follow_the_pipeline():
    wrong = []
    for path in all_modules():
        source = room_of(module_name(path)[0])
        for target, line, _ in imports(path):
            destination = room_of(target)
            if destination != source and destination not in ALLOWED[source] and target != "archcalc":
                wrong.append(f"{path.relative_to(PACKAGE)}:{line}: {source} imports {target} ({destination})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_at_module_level():
    graph = {}
    for path in all_modules():
        name = module_name(path)[0]
        graph[name] = {target for target, _, top in imports(path) if top and target != name}
    # a package's __init__ importing its own modules is how packages re-export: not a cycle
    state, path_stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        path_stack.append(node)
        for target in graph.get(node, ()):
            if name_is_parent(target, node):
                continue
            if state.get(target) == "open":
                cycles.append(" -> ".join(path_stack[path_stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        path_stack.pop()
        state[node] = "done"

    def name_is_parent(target, node):
        return node.startswith(target + ".")

    for node in graph:
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_the_static_path_imports_no_torch_or_graphviz_at_module_level():
    heavy = []
    for path in all_modules():
        if module_name(path)[0].startswith("archcalc.backend"):
            continue
        for node in parsed(path).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            heavy += [f"{path.relative_to(PACKAGE)}: {n}" for n in names
                      if n.split(".")[0] in ("torch", "graphviz", "numpy")]
    assert not heavy, heavy
