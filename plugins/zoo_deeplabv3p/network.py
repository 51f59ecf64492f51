"""DeepLabV3+ on ResNet50_vd, laid out like PaddleSeg's ``DeepLabV3P`` so its Cityscapes weights load unchanged.

Config reproduced (:data:`PADDLESEG_CONFIG`): deeplabv3p_resnet50_os8_cityscapes_1024x512_80k (ResNet50_vd, output stride 8, multi-grid
(1, 2, 4); backbone indices (0, 3): stage 0 is the low-level decoder input, stage 3 feeds the ASPP; ASPP ratios
(1, 12, 24, 36), 256 channels, separable 3x3 branches, image pooling; bilinear resizing with align_corners False).

Decoder: low-level features -> 1x1 ConvBNReLU to 48 channels; the ASPP output is resized to their size and
concatenated in front of them (256 + 48 = 304 channels); two separable 3x3 ConvBNReLU (304->256, 256->256); 1x1
classifier; finally resized to the input size.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn.layers import ASPPModule, ConvBNReLU, SeparableConvBNReLU
from zoo.nn.resnet_vd import resnet50_vd

# The model section of PaddleSeg release/2.4 configs/deeplabv3p/deeplabv3p_resnet50_os8_cityscapes_1024x512_80k.yml,
# less `pretrained` (downloads) and `num_classes` (a build argument). tests/test_networks.py holds it to the verbatim
# copy in tests/reference/deeplabv3p.yml and builds PaddleSeg's own DeepLabV3P from that file to compare logits.
PADDLESEG_CONFIG = {
    "type": "DeepLabV3P",
    "backbone": {"type": "ResNet50_vd", "output_stride": 8, "multi_grid": [1, 2, 4]},
    "backbone_indices": [0, 3],
    "aspp_ratios": [1, 12, 24, 36],
    "aspp_out_channels": 256,
    "align_corners": False,
}
PADDLESEG_DEFAULTS: dict = {"backbone": {}}  # the config sets every argument the network has
ALIGN_CORNERS = PADDLESEG_CONFIG["align_corners"]
ASPP_RATIOS = tuple(PADDLESEG_CONFIG["aspp_ratios"])
ASPP_CHANNELS = PADDLESEG_CONFIG["aspp_out_channels"]
BACKBONE_INDICES = tuple(PADDLESEG_CONFIG["backbone_indices"])
_BACKBONE = PADDLESEG_CONFIG["backbone"]
LOW_LEVEL_CHANNELS = 48


class _Decoder(nn.Layer):
    def __init__(self, num_classes: int, low_level_in: int, aspp_channels: int = ASPP_CHANNELS):
        super().__init__()
        self.conv_bn_relu1 = ConvBNReLU(low_level_in, LOW_LEVEL_CHANNELS, kernel_size=1)
        self.conv_bn_relu2 = SeparableConvBNReLU(aspp_channels + LOW_LEVEL_CHANNELS, 256, kernel_size=3, padding=1)
        self.conv_bn_relu3 = SeparableConvBNReLU(256, 256, kernel_size=3, padding=1)
        self.conv = nn.Conv2D(256, num_classes, kernel_size=1)

    def forward(self, x, low_level_feat):
        low = self.conv_bn_relu1(low_level_feat)
        x = F.interpolate(x, paddle.shape(low)[-2:], mode="bilinear", align_corners=ALIGN_CORNERS)
        x = paddle.concat([x, low], axis=1)
        return self.conv(self.conv_bn_relu3(self.conv_bn_relu2(x)))


class _DeepLabV3PHead(nn.Layer):
    def __init__(self, num_classes: int, backbone_channels):
        super().__init__()
        low_ch, high_ch = backbone_channels
        self.aspp = ASPPModule(
            ASPP_RATIOS, high_ch, ASPP_CHANNELS, ALIGN_CORNERS, use_sep_conv=True, image_pooling=True
        )
        self.decoder = _Decoder(num_classes, low_ch)

    def forward(self, low_level_feat, high_level_feat):
        return self.decoder(self.aspp(high_level_feat), low_level_feat)


class DeepLabV3P(nn.Layer):
    """Returns the logits ``[N, num_classes, H, W]`` resized (bilinear) to the input's spatial size."""

    def __init__(self, num_classes: int = 19):
        super().__init__()
        if _BACKBONE["type"] != "ResNet50_vd":
            raise ValueError(f"zoo's DeepLabV3P has a ResNet50_vd backbone, not {_BACKBONE['type']}")
        self.backbone = resnet50_vd(output_stride=_BACKBONE["output_stride"], multi_grid=_BACKBONE["multi_grid"])
        self.head = _DeepLabV3PHead(num_classes, [self.backbone.feat_channels[i] for i in BACKBONE_INDICES])

    def forward(self, x):
        feats = self.backbone(x)
        logit = self.head(feats[BACKBONE_INDICES[0]], feats[BACKBONE_INDICES[1]])
        return F.interpolate(logit, paddle.shape(x)[2:], mode="bilinear", align_corners=ALIGN_CORNERS)


def build(num_classes: int = 19) -> paddle.nn.Layer:
    return DeepLabV3P(num_classes)
