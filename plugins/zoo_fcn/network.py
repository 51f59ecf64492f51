"""FCN on HRNet_W18 (PaddleSeg's fcn_hrnetw18_cityscapes_1024x512_80k), with PaddleSeg's parameter names."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn.layers import ConvBNReLU

from .hrnet import HRNet_W18

# The model section of PaddleSeg release/2.4 configs/fcn/fcn_hrnetw18_cityscapes_1024x512_80k.yml, less `pretrained`
# (downloads) and `num_classes` (a build argument). tests/test_networks.py holds it to the verbatim copy in
# tests/reference/fcn.yml and builds PaddleSeg's own FCN from that file to compare logits.
PADDLESEG_CONFIG = {
    "type": "FCN",
    "backbone": {"type": "HRNet_W18", "align_corners": False},
    "backbone_indices": [-1],
}
# PaddleSeg's defaults for what the config leaves out (checked against PaddleSeg's signatures by the tests);
# channels None means the head keeps the backbone's width.
PADDLESEG_DEFAULTS = {
    "channels": None, "align_corners": False, "bias": True,
    "backbone": {"has_se": False, "padding_same": True, "use_psa": False},
}  # fmt: skip
SETTINGS = {
    **PADDLESEG_DEFAULTS, **PADDLESEG_CONFIG,
    "backbone": {**PADDLESEG_DEFAULTS["backbone"], **PADDLESEG_CONFIG["backbone"]},
}  # fmt: skip
# What zoo's HRNet_W18 and head implement; a config asking for anything else is refused, not silently ignored.
_IMPLEMENTED = {
    "channels": None, "align_corners": False, "bias": True, "backbone_indices": [-1],
    "backbone": {"type": "HRNet_W18", "align_corners": False, "has_se": False, "padding_same": True, "use_psa": False},
}  # fmt: skip


class FCNHead(nn.Layer):
    """1x1 ConvBNReLU (biased conv, same width) then a 1x1 classifier."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv_1 = ConvBNReLU(in_channels, in_channels, 1)
        self.cls = nn.Conv2D(in_channels, num_classes, 1)

    def forward(self, x):
        return self.cls(self.conv_1(x))


class FCN(nn.Layer):
    """Returns logits ``[N, num_classes, H, W]`` at the input's resolution."""

    def __init__(self, num_classes: int = 19):
        super().__init__()
        for key, value in _IMPLEMENTED.items():
            if SETTINGS[key] != value:
                raise ValueError(f"zoo's FCN implements {key}={value!r}, the config asks for {SETTINGS[key]!r}")
        self.backbone = HRNet_W18()
        self.head = FCNHead(self.backbone.feat_channels[-1], num_classes)

    def forward(self, x):
        logit = self.head(self.backbone(x))
        return F.interpolate(logit, paddle.shape(x)[2:], mode="bilinear", align_corners=SETTINGS["align_corners"])


def build(num_classes: int = 19) -> nn.Layer:
    """FCN-HRNet_W18 with default Paddle initialisation; load PaddleSeg weights with ``set_state_dict``."""
    return FCN(num_classes)
