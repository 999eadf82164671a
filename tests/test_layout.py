"""The package's layout (issue #19): folders by the paper's stages, no import cycle between files or folders, no
library module importing a command, every folder's __init__ listing its files, the wheel carrying every subpackage.

Imports are read from the source (every `import` / `from ... import`, at module level or inside a function), so a
lazy import that would close a cycle counts too."""

import ast
import pathlib
import subprocess
import sys
import zipfile


ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minirlvr"
KERNELS = ROOT / "kernels"


def module_files():
    """{module name: path} for minirlvr and minirlvr.kernels (which lives in kernels/)."""
    out = {}
    for base, prefix in ((PACKAGE, "minirlvr"), (KERNELS, "minirlvr.kernels")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([prefix, *parts])] = path
    return out


def resolve(name, modules):
    """The module an imported name lands in: `minirlvr.a.b.func` -> `minirlvr.a.b` if that is a module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph():
    modules = module_files()
    graph = {}
    for mod, path in modules.items():
        deps = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name, modules)
                if target and target != mod:
                    deps.add(target)
        graph[mod] = deps
    return graph


def find_cycle(graph):
    """One cycle as a list of nodes, or None (depth-first search with colours)."""
    colour, stack = {}, []

    def visit(n):
        colour[n] = "grey"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if colour.get(m) == "grey":
                return stack[stack.index(m):] + [m]
            if m not in colour:
                found = visit(m)
                if found:
                    return found
        colour[n] = "black"
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in colour:
            found = visit(n)
            if found:
                return found
    return None


def folder_of(mod):
    parts = mod.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or mod in PACKAGES else "minirlvr"


PACKAGES = {".".join(["minirlvr", *p.relative_to(PACKAGE).parts[:-1]]) for p in PACKAGE.rglob("__init__.py")}
PACKAGES.add("minirlvr.kernels")


def test_no_import_cycle_between_files():
    graph = import_graph()
    # a package's __init__ re-exporting its own modules is not a cycle of the code: leave those edges out
    graph = {m: {d for d in deps if not (m in PACKAGES and d.startswith(m + "."))} for m, deps in graph.items()}
    graph = {m: {d for d in deps if not (d in PACKAGES and m.startswith(d + "."))} for m, deps in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_import_cycle_between_folders():
    folders = {}
    for mod, deps in import_graph().items():
        a = folder_of(mod)
        for d in deps:
            b = folder_of(d)
            if a != b and a != "minirlvr" and b != "minirlvr":
                folders.setdefault(a, set()).add(b)
    cycle = find_cycle(folders)
    assert cycle is None, "folders import each other: " + " -> ".join(cycle)


def test_top_level_files_are_only_the_shared_ones():
    # the files every stage may use (the record format, the loop, the command table) and nothing else
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "cli.py", "data.py", "train.py"], top


def test_library_never_imports_a_command():
    offenders = [(m, d) for m, deps in import_graph().items() for d in deps
                 if d.startswith("minirlvr.commands") and not m.startswith("minirlvr.commands") and m != "minirlvr.cli"]
    assert not offenders, offenders


def test_commands_are_imported_only_by_the_command_table():
    # cli.py names them as strings: no module imports one (tests do; that is what they are for)
    importers = [m for m, deps in import_graph().items() if any(d.startswith("minirlvr.commands.") for d in deps)
                 and not m.startswith("minirlvr.commands")]
    assert importers == [], importers


def test_every_command_in_the_table_is_a_command_module_with_main():
    from minirlvr.cli import COMMANDS

    for name, (module, _) in COMMANDS.items():
        assert module.startswith("minirlvr.commands."), (name, module)
        path = PACKAGE / "commands" / (module.rsplit(".", 1)[1] + ".py")
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), path


def test_each_folder_init_lists_its_files():
    for init in list(PACKAGE.rglob("__init__.py")) + [KERNELS / "__init__.py"]:
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, f"{init} has no docstring"
        files = sorted(p.name for p in init.parent.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
        if init.parent.name in ("commands", "bench"):
            continue  # one file per command / target: the table that dispatches lists them
        missing = [f for f in files if f not in doc]
        assert not missing, f"{init.relative_to(ROOT)} does not list {missing}"


def test_no_file_path_arithmetic_in_the_package():
    # package files are found with importlib.resources, which also works in a wheel or a zip; the two exceptions
    # look outside the package (kernels/ finds the checkout's root; the benchmarks find ../shared/data)
    offenders = []
    for path in list(PACKAGE.rglob("*.py")) + list(KERNELS.rglob("*.py")):
        text = path.read_text()
        if "os.path.dirname(os.path.abspath(__file__))" in text and path.relative_to(ROOT).as_posix() not in ("kernels/__init__.py", "minirlvr/bench/measure.py"):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_wheel_holds_every_subpackage_and_the_package_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel, = tmp_path.glob("minirlvr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in PACKAGE.rglob("__init__.py"):
        assert f"minirlvr/{init.relative_to(PACKAGE)}" in names, init
    assert "minirlvr/kernels/__init__.py" in names and not any(n.startswith("kernels/") for n in names)
    assert "minirlvr/assets/seed_tasks.jsonl" in names and "minirlvr/configs/qwen2.5-7b.json" in names
    assert "minirlvr/reward/sandbox_worker.py" in names and "minirlvr/bench/__main__.py" in names


def test_both_parts_implement_the_protocol_and_reproduce_takes_parts():
    import inspect

    from minirlvr.miniature.parts import MiniatureParts
    from minirlvr.pipeline import reproduce
    from minirlvr.pipeline.hf_parts import HFParts
    from minirlvr.pipeline.parts import Parts

    wanted = {n: inspect.signature(f) for n, f in vars(Parts).items() if callable(f) and not n.startswith("_")}
    assert len(wanted) >= 12
    for cls in (MiniatureParts, HFParts):
        for name, sig in wanted.items():
            assert callable(getattr(cls, name, None)), f"{cls.__name__} has no {name}()"
            params = list(inspect.signature(getattr(cls, name)).parameters)
            assert len(params) >= len(sig.parameters), f"{cls.__name__}.{name}{params} vs protocol {sig}"
    assert list(inspect.signature(reproduce.reproduce).parameters)[0] == "parts"
    # and reproduce.py chooses no parts: it imports neither implementation
    graph = import_graph()
    assert not {"minirlvr.pipeline.hf_parts", "minirlvr.miniature.parts"} & graph["minirlvr.pipeline.reproduce"]


def test_public_paths_the_readme_documents_keep_working():
    from minirlvr import verifiers
    from minirlvr.integrations import trl, verl  # noqa: F401
    from minirlvr.reward import constraint_reward, hard_reward  # noqa: F401
    import minirlvr.reward

    assert minirlvr.reward.constraint_reward is constraint_reward and callable(verifiers.check)
    for module in ("minirlvr.bench", "minirlvr.kernels.compile_check"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], cwd="/", capture_output=True, text=True)
        assert out.returncode == 0 and f"python -m {module}" in out.stdout, (module, out.stderr[-2000:])


def test_the_readme_file_map_lists_every_file_of_the_tree():
    readme = (ROOT / "README.md").read_text()
    files = readme[readme.index("## Files"):readme.index("### bitsandbytes")]
    commands = files[files.index("`commands/{") + len("`commands/{"):]
    commands = set(commands[:commands.index("}")].split(","))
    missing = []
    for base, shown in ((PACKAGE, ""), (KERNELS, "kernels/")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).as_posix()
            if path.name == "__init__.py":
                continue
            if rel.startswith("commands/"):
                if path.stem not in commands:
                    missing.append(rel)
            elif f"`{shown}{rel}`" not in files and f"`minirlvr/{rel}`" not in files and f", `{path.name}`" not in files:
                missing.append(shown + rel)
    assert not missing, f"README's file map does not list {missing}"
