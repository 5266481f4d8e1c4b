"""The conda envs (envs/*.yaml, for `snakemake --sdm conda`) against what their rules' code imports.

Each rule's `conda:` env must provide exactly the third-party packages that its `video-emotion <subcommand>` can
import, and nothing more. What a subcommand can import is found by reading the code (ast), function by function:
from its `cmd_*` function in cli.py, every video_emotion function, class or module it names is followed, with the
imports each of them makes (module level and inside functions) and every module-level import of the modules they
live in. A module used as a value (a dataset adapter in a dict, a models module imported to register its builders)
counts whole. An env may thus hold a package that one path never needs, never lack one that a path imports.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from video_emotion.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
RULES = REPO / "workflow" / "rules"

# Import name -> the conda-forge package that provides it (a name not listed is its own package name).
CONDA_NAME = {
    "cv2": "opencv",
    "dlib": "dlib",
    "face_alignment": "face-alignment",
    "face_recognition_models": "face-recognition-models",
    "ffmpeg": "ffmpeg-python",
    "imageio_ffmpeg": "imageio-ffmpeg",
    "matplotlib": "matplotlib-base",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "torch": "pytorch",
    "yaml": "pyyaml",
}
# Packages an import needs that no import names: pandas reads and writes Parquet through pyarrow; conda-forge's
# imageio-ffmpeg ships no binary of its own, it runs the env's ffmpeg.
IMPLIED = {"pandas": ["pyarrow"], "imageio_ffmpeg": ["ffmpeg"]}
# Packages that may stand for another (pip's name of the same import).
ALSO_PROVIDED_BY = {"opencv": ["opencv-python", "opencv-python-headless"]}
# What a package installed by pip needs, listed in the env so that conda-forge's builds serve it and pip fetches no
# wheel of its own (face-alignment's requirements).
PIP_NEEDS = {
    "face-alignment": ["pytorch", "numpy", "scipy", "scikit-image", "opencv-python", "tqdm", "numba", "packaging"],
}


# ---- what the code imports -----------------------------------------------------------------------------------


def module_file(module: str) -> Path | None:
    path = SRC.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def parse(module: str) -> ast.Module:
    return ast.parse(module_file(module).read_text(), filename=str(module_file(module)))


def skipped(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` and `if __name__ == "__main__":` blocks never run on import."""
    if not isinstance(node, ast.If):
        return False
    test = ast.unparse(node.test)
    return "TYPE_CHECKING" in test or "__name__" in test


def walk(nodes: list[ast.AST]):
    """ast.walk over ``nodes`` that leaves out the blocks of :func:`skipped`, yielding (node, parent)."""
    stack = [(n, None) for n in nodes]
    while stack:
        node, parent = stack.pop()
        if skipped(node):
            continue
        yield node, parent
        stack.extend((child, node) for child in ast.iter_child_nodes(node))


def absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module
    package = module if module_file(module).name == "__init__.py" else module.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def imports(module: str, nodes: list[ast.AST]) -> tuple[set[str], set[str], dict[str, tuple[str, str | None]]]:
    """(third-party top-level names, video_emotion modules executed, bindings: name -> (module, attribute))."""
    third, executed, bindings = set(), set(), {}
    for node, _ in walk(nodes):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "video_emotion":
                    executed.add(alias.name)
                    bindings[alias.asname or top] = (alias.name if alias.asname else top, None)
                else:
                    third.add(top)
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            if source.split(".")[0] != "video_emotion":
                third.add(source.split(".")[0])
                continue
            executed.add(source)
            for alias in node.names:
                bindings[alias.asname or alias.name] = (source, alias.name)
                if module_file(f"{source}.{alias.name}"):  # `from package import submodule` runs it
                    executed.add(f"{source}.{alias.name}")
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("find_spec") and node.args:
            if isinstance(node.args[0], ast.Constant):  # a package found, not imported (face-recognition-models)
                third.add(node.args[0].value.split(".")[0])
    third -= {"__future__", *sys.stdlib_module_names}
    return third, executed, bindings


def top_level(module: str) -> dict[str, ast.AST]:
    return {n.name: n for n in parse(module).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def module_nodes(module: str) -> list[ast.AST]:
    """What runs when ``module`` is imported: its statements, and definitions that register themselves whole
    (``@register_model``: reached later by name, through the registry)."""
    return [n for n in parse(module).body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))
            or any("register" in ast.unparse(d) for d in n.decorator_list)]


def resolve(module: str, name: str, attr: str | None = None) -> set[tuple[str, str]]:
    """The units that ``name`` (then ``.attr``) of ``module`` stands for: (module, definition or '*' for all)."""
    if name in top_level(module):
        return {(module, name)}
    if module_file(f"{module}.{name}"):
        return module_value(f"{module}.{name}", attr)
    _, _, bindings = imports(module, module_nodes(module))
    if name in bindings:
        source, original = bindings[name]
        return resolve(source, original, attr) if original else module_value(source, attr)
    return {(module, "<module>")}


def module_value(module: str, attr: str | None) -> set[tuple[str, str]]:
    """A module object: ``module.attr`` is that unit; the module used as a value is every unit of it."""
    if attr:
        return resolve(module, attr)
    return {(module, "<module>")} | {(module, name) for name in top_level(module)}


def unit_needs(module: str, unit: str, imports_only: bool = False) -> tuple[set[str], set[tuple[str, str]]]:
    """(third-party names, further units) of one unit: a module's import-time code, a function or a class."""
    nodes = module_nodes(module) if unit == "<module>" else [top_level(module)[unit]]
    third, executed, local = imports(module, nodes)
    units = {(m, "<module>") for m in executed}
    if imports_only:  # its imports, not the names it uses (cli.main, which names every cmd_* function)
        return third, units | {u for m, n in local.values() for u in (resolve(m, n) if n else {(m, "<module>")})}
    _, _, global_bindings = imports(module, module_nodes(module))
    bindings = {**global_bindings, **local}
    defs = top_level(module)
    for node, parent in walk(nodes):
        if not isinstance(node, ast.Name) or isinstance(node.ctx, ast.Store):
            continue
        attr = parent.attr if isinstance(parent, ast.Attribute) and parent.value is node else None
        if node.id in bindings:
            source, original = bindings[node.id]
            units |= resolve(source, original, attr) if original else module_value(source, attr)
        elif node.id in defs and node.id != unit:
            units.add((module, node.id))
    return third, units


def parents(module: str) -> set[tuple[str, str]]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return {(".".join(parts[:i]), "<module>") for i in range(1, len(parts))}


@cache
def command_imports(command: str) -> frozenset[str]:
    """Third-party top-level import names that `video-emotion <command>` can reach."""
    cli = "video_emotion.cli"
    todo = [(cli, "<module>"), (cli, command_function(command)), (cli, "main")]
    seen, third = set(), set()
    while todo:
        unit = todo.pop()
        if unit in seen:
            continue
        seen.add(unit)
        names, units = unit_needs(*unit, imports_only=unit == (cli, "main"))
        third |= names
        todo += [u for u in units | parents(unit[0]) | {(unit[0], "<module>")} if u not in seen]
    return frozenset(third)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def command_function(command: str) -> str:
    return subcommands()[command].get_default("func").__name__


def conda_packages(import_names) -> set[str]:
    return {CONDA_NAME.get(n, n) for n in import_names} | {p for n in import_names for p in IMPLIED.get(n, ())}


# ---- the workflow's rules and envs ----------------------------------------------------------------------------


def rules() -> dict[str, dict]:
    """rule name -> {file, env (Path or None), command (the CLI subcommand or None)}."""
    commands = subcommands()
    out = {}
    for smk in sorted(RULES.glob("*.smk")):
        blocks = re.split(r"^(?:rule|checkpoint) (\w+):\s*$", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            env = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", body, re.M)
            call = re.search(r"(?:video-emotion|python -m video_emotion)((?:\s+\S+)+)", body)
            command = next((t for t in call.group(1).split() if t in commands), None) if call else None
            out[name] = {"file": smk.name, "env": (RULES / env.group(1)).resolve() if env else None,
                         "command": command}
    return out


def spec_name(spec: str) -> str:
    return re.split(r"[=<>!~\s\[;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def env_packages(path: Path) -> tuple[dict[str, str], list[str]]:
    """(conda package name -> spec, pip requirement lines) of an env file."""
    conda, pip = {}, []
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
        else:
            conda[spec_name(dep)] = dep
    return conda, pip


def env_needs(path: Path) -> set[str]:
    return set().union(*(conda_packages(command_imports(r["command"])) for r in rules().values()
                         if r["env"] == path and r["command"]))


ENVS = sorted((REPO / "envs").glob("*.yaml"))


def test_every_rule_that_runs_the_cli_names_an_env_file_that_exists():
    found = rules()
    assert {"manifest", "frames", "faces", "cache", "train", "evaluate", "metrics", "report"} <= set(found)
    for name, rule in found.items():
        if rule["command"]:
            assert rule["env"], f"rule {name} ({rule['file']}) runs the CLI but has no conda: env"
            assert rule["env"].is_file(), f"rule {name}: {rule['env']} does not exist"
    used = {r["env"] for r in found.values()}
    assert set(ENVS) <= used, f"env files no rule uses: {sorted(p.name for p in set(ENVS) - used)}"


def test_the_import_reading_sees_what_each_stage_needs():
    """The reading itself: heavy packages where the code uses them, none where it does not."""
    assert {"torch", "h5py", "pandas", "tqdm"} <= command_imports("train")
    assert {"dlib", "cv2", "face_alignment", "face_recognition_models", "torch"} <= command_imports("faces")
    assert "pandas" in command_imports("manifest")
    for light in ("manifest", "folds", "collect", "config", "metrics", "frames"):
        assert not {"torch", "dlib", "cv2", "h5py"} & command_imports(light), light


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_provides_what_its_rules_import_and_no_more(env):
    conda, pip = env_packages(env)
    assert not [line for line in pip if line.strip().startswith(("-e", ".", "/"))], (
        f"{env.name} installs the project with pip; the rules run it from the source tree (PYTHONPATH)")
    provided = set(conda) | {spec_name(line) for line in pip}
    for package, alternatives in ALSO_PROVIDED_BY.items():
        if provided & set(alternatives):
            provided.add(package)
    needs = env_needs(env)
    users = sorted(name for name, r in rules().items() if r["env"] == env)
    missing = needs - provided
    assert not missing, f"{env.name} lacks {sorted(missing)}, imported by the code of rule(s) {users}: add them"
    allowed = needs | {"python", "pip"} | {p for name in provided for p in PIP_NEEDS.get(name, ())}
    extra = provided - allowed - {p for n in needs for p in ALSO_PROVIDED_BY.get(n, ())}
    assert not extra, f"{env.name} lists {sorted(extra)}, which no code of rule(s) {users} imports: remove them"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_says_which_torch_build(env):
    conda, _ = env_packages(env)
    if "pytorch" in conda:  # conda-forge's builds: cpu_* or cuda*_*; an unpinned one may pull either
        assert re.fullmatch(r"pytorch\s*=\s*[\d.*]+\s*=\s*(cpu|cuda)\S*", conda["pytorch"]), (
            f"{env.name}: pin the pytorch build, e.g. `pytorch=2.*=cpu_*` (or `=cuda*` for a GPU)")
