"""docs/ARCHITECTURE.md against the code: the layers against the imports, the owned names and signatures against
the modules, and the files between stages against what the writers write (a tiny run of each writer)."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cache import make_cache

from video_emotion.cli import main as cli
from video_emotion.datasets.placeholder import make_enterface_tree
from video_emotion.evaluate import evaluate
from video_emotion.labels import EMOTIONS
from video_emotion.train import train

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "ARCHITECTURE.md").read_text()
PACKAGE = REPO / "src" / "video_emotion"


def doc_table(first_header: str) -> list[list[str]]:
    """The rows (lists of cells) of the Markdown table whose header row starts with ``| first_header |``."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# ---- layers -----------------------------------------------------------------------------------------------------


def top_modules() -> set[str]:
    """video_emotion's modules and packages, by their first name under the package."""
    return {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def imported_modules(name: str) -> set[str]:
    """The video_emotion modules (first names) that ``name`` imports, anywhere in its code but type-checking blocks."""
    files = [PACKAGE / f"{name}.py"] if (PACKAGE / f"{name}.py").exists() else sorted((PACKAGE / name).rglob("*.py"))
    found = set()
    for path in files:
        package = ["video_emotion"] + list(path.relative_to(PACKAGE).parent.parts)
        stack = [ast.parse(path.read_text())]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            stack.extend(ast.iter_child_nodes(node))
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] + [f"{target}.{a.name}" for a in node.names] if target == "video_emotion" else [target]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t.split(".")[1] for t in targets if t.startswith("video_emotion.") and t.split(".")[1] in
                      top_modules()}
    return found - {name}


def layers() -> list[tuple[str, list[str], list[str]]]:
    """(layer, its modules, the modules of its own layer it may import), top layer first."""
    return [(row[0], spans(row[1]), spans(row[2])) for row in doc_table("layer")]


def test_every_module_is_in_one_layer():
    listed = [m for _, modules, _ in layers() for m in modules]
    assert len(listed) == len(set(listed)), f"a module in two layers: {listed}"
    missing = top_modules() - set(listed)
    assert not missing, f"docs/ARCHITECTURE.md puts {sorted(missing)} in no layer: add them to the layer table"
    assert not set(listed) - top_modules(), f"the layer table names modules that do not exist: {set(listed) - top_modules()}"


def test_imports_go_down_the_layers():
    level = {m: i for i, (_, modules, _) in enumerate(layers()) for m in modules}
    same_layer_ok = {m: set(allowed) for _, modules, allowed in layers() for m in modules}
    wrong = []
    for module in top_modules():
        for target in imported_modules(module):
            up = level[target] < level[module]
            beside = level[target] == level[module] and target not in same_layer_ok[module]
            if up or beside:
                wrong.append(f"{module} -> {target}")
    assert not wrong, f"imports against the layers of docs/ARCHITECTURE.md: {sorted(wrong)}"


def test_only_the_cli_imports_train():
    assert [m for m in top_modules() if "train" in imported_modules(m)] == ["cli"]


# ---- owned names -----------------------------------------------------------------------------------------------


def resolve(module: str, dotted: str):
    """``dotted`` (``name``, ``sub.name`` or ``sub``) in ``video_emotion.<module>``."""
    obj = importlib.import_module(f"video_emotion.{module}")
    for part in dotted.split("."):
        obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(f"{obj.__name__}.{part}")
    return obj


def test_owned_names_exist_with_the_documented_arguments():
    for row in doc_table("module"):
        module = spans(row[0])[0].rstrip("/")
        for span in spans(row[1]):
            m = re.fullmatch(r"([A-Za-z_][\w.]*)(?:\(([^)]*)\))?(?: -> .*)?", span)
            if m is None:
                continue
            obj = resolve(module, m.group(1))
            if m.group(2) is None or m.group(2) == "...":
                continue
            documented = [a.strip().split("=")[0].strip() for a in m.group(2).split(",") if a.strip()]
            actual = [("**" if p.kind is p.VAR_KEYWORD else "*" if p.kind is p.VAR_POSITIONAL else "") + p.name
                      for p in inspect.signature(obj).parameters.values()]
            assert documented == actual[: len(documented)], (
                f"docs/ARCHITECTURE.md: {module}.{m.group(1)}({m.group(2)}), the code takes ({', '.join(actual)})")


def test_named_code_homes_exist():
    for row in doc_table("rule"):
        for span in spans(row[2]) + spans(row[3]):
            if re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)*\.[A-Za-z_]+", span) and span.split(".")[0] in top_modules():
                module, _, name = span.rpartition(".")
                assert hasattr(importlib.import_module(f"video_emotion.{module}"), name), span


# ---- files between stages --------------------------------------------------------------------------------------


def documented_columns(path_part: str, classes=EMOTIONS) -> list[str]:
    """The column list of the contract row whose file cell contains ``path_part``."""
    row = next(r for r in doc_table("rule") if path_part in r[1])
    first = spans(row[2])[0]
    if re.fullmatch(r"[a-z_.]+\.[A-Z_]+", first):  # the list's home in the code
        module, _, name = first.rpartition(".")
        return list(getattr(importlib.import_module(f"video_emotion.{module}"), name))
    out = []
    for col in (c.strip() for c in first.split(",")):
        out += [f"p_{c}" for c in classes] if col == "p_<class>..." else [col]
    return out


def matches(documented: list[str], actual: list[str]) -> bool:
    """``...`` in the documented list stands for any run of columns."""
    pattern = "".join(".*" if c == "..." else re.escape(c) + "," for c in documented)
    return re.fullmatch(pattern, "".join(f"{c}," for c in actual)) is not None


@pytest.fixture(scope="module")
def writers(tmp_path_factory):
    """Each writer run once, tiny: manifest and folds through the CLI, a cache, one epoch of training, evaluate."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("contract")
    make_enterface_tree(root / "data", subjects=3, sentences=1)
    cli(["manifest", str(root / "data"), "--dataset", "enterface05", "--out", str(root / "manifest.parquet"),
         "--rejected", str(root / "manifest_rejected.parquet")])
    cli(["folds", "--manifest", str(root / "manifest.parquet"), "--out", str(root / "folds.parquet"),
         "--params", json.dumps({"k": 3})])
    cache = make_cache(root, clip_len=4, subjects=3, n_frames=8, folds=3)
    params = {"train": {"epochs": 1, "batch_size": 8, "seed": 0}, "folds": {"val_subjects": 1},
              "model_kwargs": {"width": 4, "layers": [1, 1, 1, 1], "heads": 2}}
    run = root / "models/res_att/seed0/fold0"
    train(cache, "res_att", 0, run, params)
    predictions = root / "predictions/model=res_att/seed=0/fold=0/predictions.parquet"
    evaluate(cache, run / "best.pt", 0, predictions, {"clips_per_video": 2})
    yield {
        "results/manifest.parquet": root / "manifest.parquet",
        "results/manifest_rejected.parquet": root / "manifest_rejected.parquet",
        "results/folds.parquet": root / "folds.parquet",
        "results/cache/skipped.parquet": cache.parent / "skipped.parquet",
        "/history.parquet": run / "history.parquet",
        "/predictions.parquet": predictions,
        "/_clips.parquet": predictions.with_name("_clips.parquet"),
    }
    torch.set_num_threads(threads)


@pytest.mark.parametrize("row", ["results/manifest.parquet", "results/manifest_rejected.parquet",
                                 "results/folds.parquet", "results/cache/skipped.parquet", "/history.parquet",
                                 "/predictions.parquet", "/_clips.parquet"])
def test_documented_columns_are_the_written_ones(writers, row):
    actual = list(pd.read_parquet(writers[row]).columns)
    documented = documented_columns(row)
    assert matches(documented, actual), f"docs/ARCHITECTURE.md says {row} holds {documented}; it holds {actual}"
