"""The config schema is the documented source of every default; the library's own defaults must agree with it,
and every shipped config (the demo and each preset) must validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def schema_defaults(section: str) -> dict:
    props = yaml.safe_load(SCHEMA.read_text())["properties"][section]["properties"]
    return {key: spec.get("default") for key, spec in props.items()}


def test_library_defaults_match_the_schema() -> None:
    from video_emotion.cache import CACHE_DEFAULTS
    from video_emotion.evaluate import EVALUATE_DEFAULTS
    from video_emotion.faces import DEFAULTS as FACES_DEFAULTS
    from video_emotion.metrics import METRICS_DEFAULTS
    from video_emotion.train import TRAIN_DEFAULTS

    for section, defaults in [("cache", CACHE_DEFAULTS), ("evaluate", EVALUATE_DEFAULTS), ("faces", FACES_DEFAULTS),
                              ("metrics", METRICS_DEFAULTS), ("train", TRAIN_DEFAULTS)]:
        assert schema_defaults(section) == dict(defaults), section


@pytest.mark.parametrize("path", [ROOT / "config.yaml", *sorted((ROOT / "workflow" / "presets").glob("*.yaml"))],
                         ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(yaml.safe_load(path.read_text()))  # a preset is layered over config.yaml, as snakemake does
    validate(config, str(SCHEMA))


def test_a_typo_is_refused() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["train"]["epohcs"] = 3
    with pytest.raises(Exception, match="epohcs"):
        validate(config, str(SCHEMA))
