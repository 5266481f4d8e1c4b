"""The model zoo: C3D, P3D ResNets and 3Res-att variants, P3D-199 and the 18-layer video ResNets, from one registry.

    from video_emotion.models import create_model, list_models
    model = create_model("res_att", num_classes=6, width=8, layers=(1, 1, 1, 1))
    logits = model(clips)  # clips: float (B, 3, T, H, W), normalised

Every model has ``forward_features(x)`` (a feature map) and ``forward_head(feats)`` (logits), and a
``cam_layer`` for grad-CAM (``video_emotion.models.explain``). See docs/MODEL.md for every keyword.
"""

from . import c3d, p3d, p3d199, video_resnet  # noqa: F401  (registers the models)
from ._registry import create_model, list_models, register_model
from .device import optimize_for_device

__all__ = ["create_model", "list_models", "register_model", "optimize_for_device"]
