"""FCN on HRNet_W18 (PaddleSeg's fcn_hrnetw18_cityscapes_1024x512_80k), with PaddleSeg's parameter names."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn.layers import ConvBNReLU

from .hrnet import HRNet_W18


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
        self.backbone = HRNet_W18()
        self.head = FCNHead(self.backbone.feat_channels[-1], num_classes)

    def forward(self, x):
        logit = self.head(self.backbone(x))
        return F.interpolate(logit, paddle.shape(x)[2:], mode="bilinear", align_corners=False)


def build(num_classes: int = 19) -> nn.Layer:
    """FCN-HRNet_W18 with default Paddle initialisation; load PaddleSeg weights with ``set_state_dict``."""
    return FCN(num_classes)
