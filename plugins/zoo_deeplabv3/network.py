"""DeepLabV3 on ResNet50_vd, laid out like PaddleSeg's ``DeepLabV3`` so its Cityscapes weights load unchanged.

Config reproduced (:data:`PADDLESEG_CONFIG`): deeplabv3_resnet50_os8_cityscapes_1024x512_80k (ResNet50_vd, output stride 8, multi-grid
(1, 2, 4); backbone index 3; ASPP ratios (1, 12, 24, 36) with 256 channels and image pooling, plain 3x3 convs;
bilinear resizing with align_corners False).

State-dict layout: ``backbone.*`` then ``head.aspp.*`` then ``head.cls.{weight,bias}``.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn.layers import ASPPModule
from zoo.nn.resnet_vd import resnet50_vd

# The model section of PaddleSeg release/2.4 configs/deeplabv3/deeplabv3_resnet50_os8_cityscapes_1024x512_80k.yml,
# less `pretrained` (downloads); num_classes comes from its dataset (Cityscapes, 19) and is a build argument here.
# tests/test_networks.py holds it to the verbatim copy in tests/reference/deeplabv3.yml and builds PaddleSeg's own
# DeepLabV3 from that file to compare logits.
PADDLESEG_CONFIG = {
    "type": "DeepLabV3",
    "backbone": {"type": "ResNet50_vd", "output_stride": 8, "multi_grid": [1, 2, 4]},
    "backbone_indices": [3],
    "aspp_ratios": [1, 12, 24, 36],
    "aspp_out_channels": 256,
    "align_corners": False,
}
PADDLESEG_DEFAULTS: dict = {"backbone": {}}  # the config sets every argument the network has
ALIGN_CORNERS = PADDLESEG_CONFIG["align_corners"]
ASPP_RATIOS = tuple(PADDLESEG_CONFIG["aspp_ratios"])
ASPP_CHANNELS = PADDLESEG_CONFIG["aspp_out_channels"]
(BACKBONE_INDEX,) = PADDLESEG_CONFIG["backbone_indices"]
_BACKBONE = PADDLESEG_CONFIG["backbone"]


class _DeepLabV3Head(nn.Layer):
    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.aspp = ASPPModule(
            ASPP_RATIOS, in_channels, ASPP_CHANNELS, ALIGN_CORNERS, use_sep_conv=False, image_pooling=True
        )
        self.cls = nn.Conv2D(ASPP_CHANNELS, num_classes, kernel_size=1)

    def forward(self, feat):
        return self.cls(self.aspp(feat))


class DeepLabV3(nn.Layer):
    """Returns the logits ``[N, num_classes, H, W]`` resized (bilinear) to the input's spatial size."""

    def __init__(self, num_classes: int = 19):
        super().__init__()
        if _BACKBONE["type"] != "ResNet50_vd":
            raise ValueError(f"zoo's DeepLabV3 has a ResNet50_vd backbone, not {_BACKBONE['type']}")
        self.backbone = resnet50_vd(output_stride=_BACKBONE["output_stride"], multi_grid=_BACKBONE["multi_grid"])
        self.head = _DeepLabV3Head(num_classes, self.backbone.feat_channels[BACKBONE_INDEX])

    def forward(self, x):
        feats = self.backbone(x)
        logit = self.head(feats[BACKBONE_INDEX])
        return F.interpolate(logit, paddle.shape(x)[2:], mode="bilinear", align_corners=ALIGN_CORNERS)


def build(num_classes: int = 19) -> paddle.nn.Layer:
    return DeepLabV3(num_classes)
