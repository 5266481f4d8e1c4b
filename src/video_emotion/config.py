"""The run's configuration: one merge rule, the schema's defaults, clear errors, and the model specs.

The resolved config of a run is, from lowest to highest precedence::

    schema defaults (the real, paper-size settings)
    < workflow/presets/demo.yaml       only when the dataset is the generated demo
    < the user's config                config.yaml, then each --configfile, then --config (all deep-merged)

Every layer is deep-merged by :func:`deep_merge` (mappings merge key by key, anything else replaces), so a demo
setting can never reach a real-dataset run and ``--config "model_kwargs={res_att: {heads: 4}}"`` changes one key.
The workflow calls :func:`resolve`; this module knows nothing of Snakemake.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators


class ConfigError(ValueError):
    """A config value the run cannot use; the message names the key and the fix."""


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` merged into ``base`` key by key (mappings recursively; other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def typed(value):
    """``--config`` values as YAML values: Snakemake reads nested ones as strings ("3", "true", "[0, 1]"). A string
    that reads as a mapping only without its braces is text (a config file's "note: a: b"), and stays text."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, str) and value.strip():
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return value if isinstance(parsed, dict) and not value.lstrip().startswith("{") else parsed
    return value


def _with_defaults(validator_class):
    """A validator that fills in each missing property's ``default`` before validating it (jsonschema's recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_Filling = _with_defaults(Draft202012Validator)


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "the config"


def _message(error, schema: dict) -> str:
    """One line for a schema error: the key, what is wrong, and for an unknown key the nearest valid ones."""
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in unknown:
            near = difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(near)}?" if near else f"valid keys: {', '.join(allowed)}"
            parts.append(f"unknown key '{key}' in {where} ({hint})")
        return "; ".join(parts)
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    return f"{where}: {error.message}"


def validate(config: dict, schema: dict) -> dict:
    """Fill the schema's defaults into ``config`` (in place) and check it; raise ConfigError naming every bad key."""
    errors = sorted(_Filling(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("config: " + "; ".join(dict.fromkeys(_message(e, schema) for e in errors)))
    return config


def load_yaml(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text()) or {}


def resolve(user: dict, schema: dict, demo_preset: dict) -> dict:
    """The run's config: schema defaults < ``demo_preset`` (only for ``dataset: demo``) < ``user``."""
    base = demo_preset if user.get("dataset", "demo") == "demo" else {}
    config = deep_merge(base, user)
    validate(config, schema)
    _check_model_train(config, schema)
    model_specs(config)  # unknown architectures and keywords are refused before any job runs
    if config["dataset"] != "demo" and not config.get("dataset_root"):
        raise ConfigError(f"config: dataset '{config['dataset']}' needs dataset_root, e.g. "
                          f"--config dataset_root=/data/{config['dataset']}")
    return config


def _check_model_train(config: dict, schema: dict) -> None:
    """Each ``model_train`` entry names an architecture or a variant, and only train settings valid for ``train``."""
    train_schema = schema["properties"]["train"]
    known = sorted({*ARCH_KWARGS, *(config.get("model_variants") or {})})
    for name, override in config["model_train"].items():
        if name not in known:
            raise ConfigError(f"config: model_train.{name} names no architecture or variant ({', '.join(known)})")
        errors = list(Draft202012Validator(train_schema).iter_errors({**config["train"], **override}))
        if errors:
            raise ConfigError(f"config: model_train.{name}: " + "; ".join(
                _message(e, train_schema).replace(" in the config", "") for e in errors))


def model_specs(config: dict) -> dict[str, dict]:
    """Each entry of ``models`` as ``{"arch": registered architecture, "kwargs": create_model keywords, "train":
    its train settings that differ from the shared ones (``model_train``)}``.

    A name is a variant of ``model_variants`` (``{arch: res_att, heads: 4}``) or else an architecture itself; the
    keywords are the architecture's ``model_kwargs`` with the variant's own on top.
    """
    variants = config.get("model_variants") or {}
    per_arch = config.get("model_kwargs") or {}
    known = set(ARCH_KWARGS)
    specs = {}
    for name in config["models"]:
        variant = dict(variants.get(name) or {})
        arch = variant.pop("arch", name)
        init = variant.pop("init", None)
        if arch not in known:
            hint = "declare it under model_variants with an arch, " if name not in variants else ""
            raise ConfigError(f"config: model '{name}' has no architecture '{arch}' ({hint}architectures: "
                              f"{', '.join(sorted(known))})")
        kwargs = {**(per_arch.get(arch) or {}), **variant}
        bad = sorted(set(kwargs) - ARCH_KWARGS[arch])
        if bad:
            near = {k: difflib.get_close_matches(k, sorted(ARCH_KWARGS[arch]), n=2, cutoff=0.5) for k in bad}
            raise ConfigError(f"config: {arch} (model '{name}') takes no keyword " + ", ".join(
                f"'{k}'" + (f" (did you mean {' or '.join(v)}?)" if v else "") for k, v in near.items())
                + f"; its keywords: {', '.join(sorted(ARCH_KWARGS[arch]))}")
        specs[name] = {"arch": arch, "kwargs": kwargs, "train": dict((config.get("model_train") or {}).get(name) or {})}
        if init:
            specs[name]["init"] = init_spec(name, arch, init, config)
    return specs


PRETRAIN_DIR = "results/pretrain"
# train keys that act on models with an init only (models.pretrained.FINETUNE_DEFAULTS; here without torch)
FINETUNE_KEYS = ("pretrained_lr_mult", "freeze_stages", "freeze_epochs", "freeze_bn")


def init_spec(name: str, arch: str, init: dict, config: dict) -> dict:
    """A variant's ``init`` with its file named: ``path`` as given, or for ``run: NAME`` (a run of the config's
    ``pretrain`` section) the ``best.pt`` of that run's ``model`` (default: the variant's architecture), ``seed`` and
    ``fold``, which the run writes under ``results/pretrain/NAME/``."""
    init = dict(init)
    if ("path" in init) == ("run" in init):
        raise ConfigError(f"config: model_variants.{name}.init needs either a path (a file) or a run (a pretrain run)")
    if "run" in init:
        runs = config.get("pretrain") or {}
        if init["run"] not in runs:
            raise ConfigError(f"config: model_variants.{name}.init.run '{init['run']}' is not a run of pretrain "
                              f"(its runs: {', '.join(sorted(runs)) or 'none'})")
        init.setdefault("kind", "checkpoint")
        if init["kind"] != "checkpoint":
            raise ConfigError(f"config: model_variants.{name}.init: a pretrain run gives a checkpoint (kind: "
                              "checkpoint)")
        init.setdefault("model", arch)
        init["path"] = pretrain_checkpoint(init["run"], init["model"], init.get("seed", 0), init.get("fold", 0))
    elif "kind" not in init:
        raise ConfigError(f"config: model_variants.{name}.init needs a kind (resnet2d, c3d, torchvision_video, p3d199, "
                          "checkpoint, state_dict)")
    if init["kind"] == "resnet2d" and ARCH_KWARGS.get(arch) is not _P3D:
        raise ConfigError(f"config: model_variants.{name}.init: resnet2d inflates into a P3D net, not {arch}")
    if init["kind"] == "c3d" and arch != "c3d":
        raise ConfigError(f"config: model_variants.{name}.init: c3d weights are for arch c3d, not {arch}")
    if init["kind"] == "torchvision_video" and arch not in VIDEO_RESNETS:
        raise ConfigError(f"config: model_variants.{name}.init: torchvision_video weights are for "
                          f"{', '.join(VIDEO_RESNETS)}, not {arch}")
    trunk = {**((config.get("model_kwargs") or {}).get(arch) or {}),
             **((config.get("model_variants") or {}).get(name) or {})}.get("trunk")
    if init["kind"] == "p3d199" and arch != "p3d199" and not (ARCH_KWARGS.get(arch) is _P3D and trunk == "p3d199"):
        raise ConfigError(f"config: model_variants.{name}.init: p3d199 weights are for arch p3d199 or a P3D variant "
                          f"with trunk: p3d199, not {arch}")
    return init


def pretrain_checkpoint(run: str, model: str, seed: int = 0, fold: int = 0) -> str:
    """Where pretrain run ``run`` writes the best.pt of ``model``, ``seed``, ``fold``."""
    return f"{PRETRAIN_DIR}/{run}/results/models/{model}/seed{seed}/fold{fold}/best.pt"


# Keyword arguments of each architecture's builder (tests hold them against the model classes' signatures, so the
# workflow can check a config without importing torch).
_P3D = frozenset({"width", "layers", "block", "p3d_kinds", "temporal_strides", "stem_pool", "in_channels",
                  "sa_stages", "sa_kernel", "sa_residual", "mhsa", "heads", "attn_dropout", "pos", "mlp_ratio",
                  "mhsa_residual", "dropout", "trunk"})
VIDEO_RESNETS = ("r3d_18", "mc3_18", "r2plus1d_18")
ARCH_KWARGS = {
    "c3d": frozenset({"width", "fc_dim", "dropout", "in_channels"}),
    **{arch: _P3D for arch in ("p3d", "p3d_sa", "p3d_mhsa", "res_att", "res_att2")},
    **{arch: frozenset({"layers", "width", "in_channels", "dropout"}) for arch in VIDEO_RESNETS},
    "p3d199": frozenset({"layers", "width", "p3d_kinds", "in_channels", "sa_stages", "sa_kernel", "sa_residual", "mhsa",
                         "heads", "attn_dropout", "pos", "mlp_ratio", "mhsa_residual", "dropout"}),
}
