"""Local multi-GPU runs: two jobs never get the same GPU, and a scheduler's choice is left alone."""

from __future__ import annotations

import os

import pytest

from video_emotion import gpus


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield
    gpus.release()


def test_jobs_get_different_gpus(tmp_path) -> None:
    assert gpus.claim_gpus(1, count=3, lock_dir=tmp_path) == [0]
    del os.environ["CUDA_VISIBLE_DEVICES"]  # as a second job would start
    assert gpus.claim_gpus(2, count=3, lock_dir=tmp_path) == [1, 2]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,2"


def test_too_few_free_gpus_is_an_error_that_holds_nothing(tmp_path) -> None:
    gpus.claim_gpus(1, count=2, lock_dir=tmp_path)
    del os.environ["CUDA_VISIBLE_DEVICES"]
    with pytest.raises(RuntimeError, match="only 1 of 2 are free"):
        gpus.claim_gpus(2, count=2, lock_dir=tmp_path)
    assert len(gpus._held) == 1  # the failed claim released what it had taken


def test_a_schedulers_choice_and_cpu_jobs_are_left_alone(tmp_path, monkeypatch) -> None:
    assert gpus.claim_gpus(0, count=4, lock_dir=tmp_path) == []
    assert gpus.claim_gpus(1, count=0, lock_dir=tmp_path) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpus.claim_gpus(1, count=4, lock_dir=tmp_path) == []
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
