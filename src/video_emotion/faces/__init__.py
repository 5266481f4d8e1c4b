"""Faces stage: detector/landmark backends, tracking and smoothing, similarity alignment, per-shard processing."""

from video_emotion.faces.align import TEMPLATE, align_face
from video_emotion.faces.backends import dlib_model_path, load_dlib_models, make_backend
from video_emotion.faces.pipeline import DEFAULTS, FacePipeline, FaceResult, process_shard

__all__ = ["DEFAULTS", "TEMPLATE", "FacePipeline", "FaceResult", "align_face", "dlib_model_path",
           "load_dlib_models", "make_backend", "process_shard"]
