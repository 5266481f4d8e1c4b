"""video-emotion: a reproducible pipeline from raw face videos to a trained 3Res-att emotion recognizer."""

__version__ = "0.1.0"
