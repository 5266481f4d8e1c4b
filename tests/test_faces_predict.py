"""predict's face/frames overrides: applied over the checkpoint's settings, unknown keys refused by name."""

from pathlib import Path

import pytest

from video_emotion.cli import build_parser, cmd_predict
from video_emotion.predict import _preprocessing

CKPT = {"config": {"frames": {"fps": 10, "height": 240}, "faces": {"backend": "dlib", "crop_size": 64}}}


def test_overrides_replace_the_checkpoint_settings():
    frames, faces = _preprocessing(CKPT, Path("m.pt"), {"frames": {"height": 576}, "faces": {"min_face": 30}})
    assert frames == {"fps": 10, "height": 576}
    assert faces == {"backend": "dlib", "crop_size": 64, "min_face": 30}
    assert _preprocessing(CKPT, Path("m.pt")) == (CKPT["config"]["frames"], CKPT["config"]["faces"])


@pytest.mark.parametrize("overrides, bad", [({"faces": {"detect_scael": 1}}, "detect_scael"),
                                            ({"frames": {"width": 9}}, "width"), ({"face": {}}, "face")])
def test_unknown_overrides_are_refused_naming_the_valid_keys(overrides, bad):
    with pytest.raises(ValueError, match=rf"unknown predict overrides \['{bad}'\]; valid: frames \['fps', 'height'\]"
                                         r", faces \[.*'min_face'"):
        _preprocessing(CKPT, Path("m.pt"), overrides)


def test_cli_flags_reach_predict(monkeypatch):
    seen = {}
    monkeypatch.setattr("video_emotion.predict.predict", lambda *a, **kw: seen.update(kw))
    args = build_parser().parse_args(["predict", "v.mp4", "--faces", '{"detect_scale": 1.0}', "--frames",
                                      '{"height": 576}'])
    cmd_predict(args)
    assert seen["overrides"] == {"frames": {"height": 576}, "faces": {"detect_scale": 1.0}}
    args = build_parser().parse_args(["predict", "v.mp4", "--faces", "{detect_scale: 1}"])
    with pytest.raises(SystemExit, match="--faces is not valid JSON"):
        cmd_predict(args)
