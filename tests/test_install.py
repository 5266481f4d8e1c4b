"""The install stays reproducible: the lock (constraints.txt) against pyproject.toml, and the one piece of Snakemake
internals the workflow relies on (the `--until` hook of workflow/rules/common.smk) against the Snakemake installed."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

ROOT = Path(__file__).resolve().parents[1]


def lock() -> dict[str, Version]:
    """constraints.txt as {canonical name: pinned version}; every line must be an exact pin of a public version."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==" and not req.url and not req.marker, f"constraints.txt: {line!r} is not NAME==X"
        assert not Version(spec.version).local, f"constraints.txt: {line!r}: PyPI serves no local versions (+...)"
        name = canonicalize_name(req.name)
        assert name not in pins, f"constraints.txt pins {req.name} twice"
        pins[name] = Version(spec.version)
    return pins


def test_the_lock_pins_every_dependency_within_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    pins = lock()
    for dep in deps:
        req = Requirement(dep)
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"constraints.txt does not pin {req.name} (pyproject.toml: {dep!r}); run make lock"
        assert req.specifier.contains(pin, prereleases=True), (
            f"constraints.txt pins {req.name}=={pin}, outside pyproject.toml's {dep!r}; run make lock")


def test_the_lock_pins_the_torch_that_make_setup_installs():
    torch = re.search(r"^TORCH \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert lock()["torch"] == Version(torch)


def test_setup_and_ci_install_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK \?= constraints\.txt$", makefile, re.MULTILINE)
    installs = [line for line in makefile.splitlines() if "$(VENV)/bin/python -m pip install" in line
                and "--upgrade pip" not in line]
    assert installs and all("-c $(LOCK)" in line for line in installs), installs
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI: make test, so .venv from the lock


# `--until STAGE` through the checkpoints (workflow/rules/common.smk): Snakemake 9 finds no job of a stage whose jobs
# come from a checkpoint and schedules nothing; the hook swaps the workflow's class for a subclass whose dag_settings
# property rewrites `until` to the stage's gathering rule when Snakemake assigns the settings. No supported way exists
# in Snakemake 9 (checked up to the version in constraints.txt), so Snakemake is pinned by the lock and these tests
# fail the day a release changes what the hook relies on.

def test_the_until_hook_fits_the_installed_snakemake():
    from snakemake.api import DAGApi
    from snakemake.settings.types import DAGSettings
    from snakemake.workflow import Workflow

    assert dataclasses.is_dataclass(Workflow) and "dag_settings" in {f.name for f in dataclasses.fields(Workflow)}
    assert "until" in {f.name for f in dataclasses.fields(DAGSettings)}
    assert not DAGSettings.__dataclass_params__.frozen  # the hook assigns settings.until
    # the settings reach the workflow by assignment after the Snakefile is read: the hook's setter sees them
    assert "_workflow.dag_settings = self.dag_settings" in inspect.getsource(DAGApi)
    assert "self.dag_settings.until" in inspect.getsource(Workflow)


def test_until_a_stage_behind_the_checkpoints_plans_its_jobs(tmp_path):
    """A dry run of `--until faces` plans the checkpoint and the faces stage's gathering job (without the hook,
    Snakemake plans nothing); the real run is tests/test_workflow.py::test_until_a_stage_runs_up_to_it."""
    (tmp_path / "config.yaml").write_text("dataset: demo\ndemo: {subjects: 2, sentences: 1}\nfolds: {k: 2}\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(tmp_path), "--cores", "1", "-n", "--until", "faces"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout + proc.stderr
    planned = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", out, re.MULTILINE))
    assert {"manifest", "faces_qc"} <= planned and not planned & {"cache", "train", "evaluate"}, out[-4000:]
