"""The codebase's shape (docs/architecture.md): folders by concept, small modules and functions, imports one way.

Read from the source with `ast` (nothing is imported), so it runs in any of the project's environments.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTENSION = REPO / "sheap_blender"
BACKEND = REPO / "backend"
ARCHITECTURE = REPO / "docs" / "architecture.md"
MAX_TOP_MODULES = 8  # sheap_blender/'s own modules: the registration, the panel, the package's __init__
MIN_PACKAGES = 4
MAX_MODULES_PER_FOLDER = 12  # __init__.py counted
MAX_FUNCTION_LINES = 100


def _folders(root: Path) -> list[Path]:
    """Every folder of a package tree that holds Python modules."""
    return sorted({path.parent for path in root.rglob("*.py") if "__pycache__" not in path.parts})


def _packages(root: Path) -> list[Path]:
    return [folder for folder in _folders(root) if (folder / "__init__.py").is_file()]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(root.rglob("*.py")) if "__pycache__" not in path.parts}


def _imports(path: Path, name: str, modules: dict[str, Path] | None = None) -> list[str]:
    """Every module `path` imports (at the top or inside a function), as absolute dotted names.

    `from package import module` counts as the module alone when `modules` knows it (the package is only its parent)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.append(submodule if modules is not None and submodule in modules else module)
                if modules is None:
                    found.append(submodule)
    return found


def _import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the project's modules it imports (a package's __init__ counts as the package)."""
    modules = _modules(root)
    return {name: {target for target in _imports(path, name, modules) if target in modules and target != name}
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_of(name: str, modules: dict[str, Path]) -> str:
    return name if modules[name].name == "__init__.py" else name.rpartition(".")[0]


def _package_graph(root: Path) -> dict[str, set[str]]:
    """package -> the packages its modules import, below `root`'s own top level (whose modules wire the rest)."""
    modules = _modules(root)
    top = _module_name(root / "__init__.py")
    graph: dict[str, set[str]] = defaultdict(set)
    for name, targets in _import_graph(root).items():
        package = _package_of(name, modules)
        if package == top:
            continue
        for target in targets:
            target_package = _package_of(target, modules)
            if target_package not in (top, package):
                graph[package].add(target_package)
    return graph


def test_cycle_finder_finds_a_circle_and_passes_a_chain():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_extension_top_is_a_few_modules_over_packages_by_concept():
    top_modules = sorted(path.name for path in EXTENSION.glob("*.py"))
    packages = [folder for folder in _packages(EXTENSION) if folder.parent == EXTENSION]
    assert len(top_modules) <= MAX_TOP_MODULES, top_modules
    assert len(packages) >= MIN_PACKAGES, packages


def test_no_folder_holds_more_than_twelve_modules():
    crowded = {str(folder.relative_to(REPO)): count
               for root in (EXTENSION, BACKEND) for folder in _folders(root)
               if (count := len(list(folder.glob("*.py")))) > MAX_MODULES_PER_FOLDER}
    assert not crowded, f"folders over {MAX_MODULES_PER_FOLDER} modules: {crowded}"


def test_no_function_over_a_hundred_lines():
    long = []
    for root in (EXTENSION, BACKEND, REPO / "scripts"):
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_import_circle():
    for root in (EXTENSION, BACKEND):
        assert _cycles(_import_graph(root)) == [], f"modules of {root.name}/ that import one another in a circle"
        assert _cycles(_package_graph(root)) == [], f"packages of {root.name}/ that import one another in a circle"


def test_nothing_imports_upward():
    """A package never imports the top level that wires it (the extension's registration and panel, the backend's
    commands); the backend's packages may take a leaf of its top (a module that imports nothing of the project)."""
    for root, leaves_allowed in ((EXTENSION, False), (BACKEND, True)):
        modules = _modules(root)
        graph = _import_graph(root)
        top = _module_name(root / "__init__.py")
        top_modules = {name for name in modules if _package_of(name, modules) == top and name != top}
        upward = [f"{name} -> {target}" for name, targets in graph.items() if _package_of(name, modules) != top
                  for target in targets & top_modules if not (leaves_allowed and not graph[target])]
        assert not upward, upward


def test_core_and_backend_client_stay_below_blender():
    """core/ (shared with the backend) imports only itself; neither it nor backend_client/ imports bpy."""
    for name, path in _modules(EXTENSION).items():
        imported = _imports(path, name)
        if name.startswith(("sheap_blender.core", "sheap_blender.backend_client")):
            assert not [target for target in imported if target.split(".")[0] in ("bpy", "bpy_extras", "torch")], name
        if name.startswith("sheap_blender.core"):
            outside = [target for target in imported
                       if target.startswith("sheap_blender") and not target.startswith("sheap_blender.core")]
            assert not outside, f"{name} imports {outside}"


def test_every_package_is_in_the_architecture_doc():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    missing = [f"{folder.relative_to(REPO).as_posix()}/" for root in (EXTENSION, BACKEND)
               for folder in [root, *_packages(root)] if f"{folder.relative_to(REPO).as_posix()}/" not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"
