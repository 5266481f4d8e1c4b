"""The run's config as Snakemake itself resolves it: schema defaults, then the demo preset (demo only), then the
user's files and --config, one deep-merge rule throughout. The resolved config is read back from the
`resolved_config` rule's output, so these tests go through Snakemake's own config loading, not a copy of it."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from video_emotion.config import ARCH_KWARGS, ConfigError, deep_merge, model_specs, resolve

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
PRESETS = ROOT / "workflow" / "presets"
DEMO = yaml.safe_load((PRESETS / "demo.yaml").read_text())


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def schema_defaults(schema: dict) -> dict:
    """The schema's default of every key, read straight from the schema file (nested sections recursively)."""
    out = {}
    for key, spec in schema.get("properties", {}).items():
        if "properties" in spec:
            out[key] = schema_defaults(spec)
        elif "default" in spec:
            out[key] = spec["default"]
    return out


def leaves(d: dict, prefix=()) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(leaves(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def resolved_by_snakemake(workdir: Path, *args: str) -> dict:
    """Run the resolved_config rule in ``workdir`` (with the project's config.yaml) and read its output."""
    (workdir / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "1", "results/config.yaml", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return load(workdir / "results" / "config.yaml")


def assert_layers(resolved: dict, layers: list[dict]) -> None:
    """Every leaf of the resolved config is the value of the highest layer that sets it, else the schema default:
    nothing else (no demo value in a real-dataset run) can be there."""
    expected = leaves(schema_defaults(load(SCHEMA)))
    for layer in layers:
        for path, value in leaves(layer).items():
            # a layer's leaf replaces the subtree under it and an empty default mapping above it
            expected = {p: v for p, v in expected.items() if p[:len(path)] != path and path[:len(p)] != p}
            expected[path] = value
    got = leaves(resolved)
    assert got == expected, {p: (got.get(p), expected.get(p)) for p in set(got) | set(expected)
                             if got.get(p) != expected.get(p)}


@pytest.mark.parametrize("preset", ["enterface05", "ravdess", "crema_d"])
def test_a_preset_resolves_to_schema_defaults_plus_its_own_keys(tmp_path: Path, preset: str) -> None:
    path = PRESETS / f"{preset}.yaml"
    resolved = resolved_by_snakemake(tmp_path, "--configfile", str(path), "--config", "dataset_root=/data/x")
    assert_layers(resolved, [load(ROOT / "config.yaml"), load(path), {"dataset_root": "/data/x"}])
    demo_only = {p: v for p, v in leaves(DEMO).items() if leaves(schema_defaults(load(SCHEMA))).get(p) != v}
    leaked = {p: v for p, v in demo_only.items() if leaves(resolved).get(p) == v and p not in leaves(load(path))}
    assert not leaked, f"demo settings in the {preset} run: {leaked}"


def test_the_demo_is_schema_defaults_plus_the_demo_preset(tmp_path: Path) -> None:
    resolved = resolved_by_snakemake(tmp_path)
    assert_layers(resolved, [DEMO, load(ROOT / "config.yaml")])


def test_config_values_merge_deeply_and_keep_their_types(tmp_path: Path) -> None:
    resolved = resolved_by_snakemake(tmp_path, "--config", "model_kwargs={res_att: {heads: 4}}",
                                     "train={lr: 0.001, amp: false}", "seeds=[0, 1]")
    assert resolved["model_kwargs"]["res_att"] == {**DEMO["model_kwargs"]["res_att"], "heads": 4}
    assert resolved["train"]["lr"] == 0.001 and resolved["train"]["amp"] is False
    assert resolved["train"]["epochs"] == DEMO["train"]["epochs"]
    assert resolved["seeds"] == [0, 1]


def test_a_user_file_over_the_demo_keeps_the_demo_size(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("models: [res_att, c3d]\ntrain: {epochs: 2}\n")
    resolved = resolved_by_snakemake(tmp_path, "--configfile", str(tmp_path / "mine.yaml"))
    specs = model_specs(resolved)
    assert specs["c3d"]["kwargs"] == DEMO["model_kwargs"]["c3d"]
    assert resolved["train"]["epochs"] == 2 and resolved["train"]["lr"] == DEMO["train"]["lr"]


@pytest.mark.parametrize("args, words", [
    (["--config", "train={epohcs: 3}"], ["epohcs", "did you mean epochs"]),
    (["--config", "frames={fps: -3}"], ["frames.fps"]),
    (["--config", "model_kwargs={res_att: {hedas: 2}}"], ["hedas", "did you mean heads"]),
    (["--config", "models=[res_att, resatt]"], ["resatt", "model_variants"]),
    (["--config", "dataset=enterface05"], ["dataset_root"]),
])
def test_a_bad_config_stops_the_run_with_one_line_naming_the_key(tmp_path: Path, args, words) -> None:
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "-n", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for word in words:
        assert word in out, out
    assert "Traceback" not in out and "$schema" not in out, out


def test_variants_take_their_architecture_and_keywords() -> None:
    config = resolve({"dataset": "csv", "dataset_root": "x.csv", "models": ["res_att", "res_att_h4"], "model_variants": {"res_att_h4": {"arch": "res_att",
                      "heads": 4}}, "model_kwargs": {"res_att": {"width": 8}}}, load(SCHEMA), DEMO)
    specs = model_specs(config)
    assert specs["res_att"]["arch"] == "res_att" and "heads" not in specs["res_att"]["kwargs"]
    assert specs["res_att_h4"] == {"arch": "res_att", "kwargs": {"width": 8, "heads": 4}, "train": {}}


def test_every_demo_model_is_demo_size() -> None:
    config = resolve({"models": sorted(ARCH_KWARGS)}, load(SCHEMA), DEMO)
    for name, spec in model_specs(config).items():
        assert spec["kwargs"].get("width") == (16 if name == "c3d" else 8), name  # the preset says why for c3d
        assert spec["kwargs"].get("fc_dim", 64) == 64, name


def test_deep_merge_replaces_lists_and_merges_mappings() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}


def test_a_wrong_type_is_refused_by_resolve() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        resolve({"seeds": ["a"]}, load(SCHEMA), DEMO)


def test_architecture_keywords_match_the_model_classes() -> None:
    from video_emotion.config import VIDEO_RESNETS
    from video_emotion.models.c3d import C3D
    from video_emotion.models.p3d import P3DNet
    from video_emotion.models.p3d199 import P3D199
    from video_emotion.models.video_resnet import VideoResNet

    def keywords(cls) -> set[str]:
        return {n for n, p in inspect.signature(cls.__init__).parameters.items()
                if p.kind == p.KEYWORD_ONLY}

    assert ARCH_KWARGS["c3d"] == keywords(C3D)
    assert ARCH_KWARGS["res_att"] == keywords(P3DNet) | {"trunk"}
    assert ARCH_KWARGS["p3d199"] == keywords(P3D199) and ARCH_KWARGS["p3d199"] < ARCH_KWARGS["res_att"]
    assert all(ARCH_KWARGS[arch] == keywords(VideoResNet) for arch in VIDEO_RESNETS)


def test_library_defaults_match_the_schema() -> None:
    from video_emotion.cache import CACHE_DEFAULTS
    from video_emotion.config import FINETUNE_KEYS
    from video_emotion.evaluate import EVALUATE_DEFAULTS
    from video_emotion.faces import DEFAULTS as FACES_DEFAULTS
    from video_emotion.metrics import METRICS_DEFAULTS
    from video_emotion.models.pretrained import FINETUNE_DEFAULTS
    from video_emotion.train import TRAIN_DEFAULTS

    defaults = schema_defaults(load(SCHEMA))
    # the seed comes from `seeds`, per run; the fine-tuning keys act on models with an init
    train = {k: v for k, v in {**TRAIN_DEFAULTS, **FINETUNE_DEFAULTS}.items() if k != "seed"}
    assert set(FINETUNE_KEYS) == set(FINETUNE_DEFAULTS)
    for section, library in [("cache", CACHE_DEFAULTS), ("evaluate", EVALUATE_DEFAULTS), ("faces", FACES_DEFAULTS),
                             ("metrics", METRICS_DEFAULTS), ("train", train)]:
        assert defaults[section] == dict(library), section


def test_videos_that_share_a_file_name_get_distinct_names() -> None:
    from video_emotion.io import unique_names

    names = unique_names(["/x/new videos/a/clip été 1.avi", "/x/new videos/b/clip été 1.avi", "/d/s3_su_1.avi",
                          "/d/s3_su_1.avi"])
    assert names == {"a_clip_ete_1": "/x/new videos/a/clip été 1.avi", "b_clip_ete_1": "/x/new videos/b/clip été 1.avi",
                     "s3_su_1": "/d/s3_su_1.avi"}


def test_the_working_directory_config_file_is_read(tmp_path: Path) -> None:
    """Snakemake's `configfile: config.yaml` (the run's own file, not a --configfile) reaches the resolved config."""
    (tmp_path / "config.yaml").write_text("dataset: csv\ndataset_root: /data/videos.csv\ntrain: {epochs: 3}\n")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "1", "results/config.yaml"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = load(tmp_path / "results" / "config.yaml")
    assert_layers(resolved, [{"dataset": "csv", "dataset_root": "/data/videos.csv", "train": {"epochs": 3}}])


def test_the_default_run_is_the_papers_experiment(tmp_path: Path) -> None:
    """With nothing configured, the demo trains all six models with two seeds, each at demo size, and any unequal
    train setting is one the preset states (model_train), not a silent difference."""
    resolved = resolved_by_snakemake(tmp_path)
    paper = {"res_att", "res_att2", "c3d", "p3d", "p3d_sa", "p3d_mhsa"}  # 3Res-att, C3D, "3Res att2", ablations
    assert set(resolved["models"]) == paper and len(resolved["models"]) == 6
    assert resolved["models"][0] == "res_att"  # the paper's model: its claims compare it with each other
    assert len(resolved["seeds"]) >= 2
    specs = model_specs(resolved)
    assert set(specs) == paper
    assert {name for name, spec in specs.items() if spec["train"]} == set(resolved["model_train"])


@pytest.mark.parametrize("override, words", [
    ({"c3dd": {"lr": 0.001}}, ["model_train.c3dd", "c3d"]),
    ({"c3d": {"learning_rate": 0.001}}, ["learning_rate", "model_train.c3d", "lr"]),
    ({"c3d": {"lr": -1}}, ["model_train.c3d", "lr"]),
])
def test_a_bad_model_train_entry_is_named(override, words) -> None:
    with pytest.raises(ConfigError) as err:
        resolve({"model_train": override}, load(SCHEMA), DEMO)
    for word in words:
        assert word in str(err.value), err.value


def test_a_variant_init_names_its_file() -> None:
    variants = {"ft": {"arch": "res_att", "init": {"run": "crema", "seed": 1}},
                "inet": {"arch": "p3d", "init": {"kind": "resnet2d", "path": "weights/resnet50.pth"}}}
    config = resolve({"models": ["ft", "inet", "res_att"], "model_variants": variants,
                      "pretrain": {"crema": {"dataset": "demo"}}}, load(SCHEMA), DEMO)
    specs = model_specs(config)
    assert specs["ft"]["init"]["path"] == "results/pretrain/crema/results/models/res_att/seed1/fold0/best.pt"
    assert specs["ft"]["init"]["kind"] == "checkpoint" and specs["inet"]["init"]["min_matched"] == 0.9
    assert "init" not in specs["res_att"] and "init" not in specs["ft"]["kwargs"]
    for init, words in [({"run": "nope"}, "not a run of pretrain"), ({"path": "x", "run": "crema"}, "either"),
                        ({"path": "x"}, "needs a kind"), ({"kind": "c3d", "path": "x"}, "c3d weights")]:
        with pytest.raises(ConfigError, match=words):
            resolve({"models": ["v"], "model_variants": {"v": {"arch": "res_att", "init": init}},
                     "pretrain": {"crema": {}}}, load(SCHEMA), DEMO)


def test_the_fine_tuning_preset_pretrains_on_crema_d() -> None:
    user = deep_merge(load(ROOT / "workflow/presets/enterface05.yaml"),
                      load(ROOT / "workflow/presets/enterface05_from_crema_d.yaml"))
    user = deep_merge(user, {"dataset_root": "/data/enterface05", "pretrain": {"crema_d": {"dataset_root": "/c"}}})
    config = resolve(user, load(SCHEMA), DEMO)
    init = model_specs(config)["res_att_crema"]["init"]
    assert init["path"] == "results/pretrain/crema_d/results/models/res_att/seed0/fold0/best.pt"
    assert config["pretrain"]["crema_d"]["dataset"] == "crema_d" and config["train"]["pretrained_lr_mult"] == 0.1
