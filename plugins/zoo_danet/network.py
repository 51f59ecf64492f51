"""DANet (dual attention network) on ResNet50_vd, laid out so PaddleSeg's DANet state dicts load as they are.

Matches PaddleSeg's ``danet_resnet50_os8_cityscapes_1024x512_80k`` (:data:`PADDLESEG_CONFIG`): backbone output
stride 8 and *no* multi-grid (the config sets none, so PaddleSeg's default (1, 1, 1): only DeepLabV3/V3+ use (1, 2, 4)),
the head reads backbone stage 3 (index 3; index 2 is selected but unused), bilinear upsampling with
``align_corners=False`` and ``align_mode=1``. Reference: Fu et al., "Dual Attention Network for Scene Segmentation",
https://arxiv.org/abs/1809.02983.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn import ops
from zoo.nn.layers import ConvBNReLU
from zoo.nn.resnet_vd import resnet50_vd

# The model section of PaddleSeg release/2.4 configs/danet/danet_resnet50_os8_cityscapes_1024x512_80k.yml, less
# `pretrained` (a download) and `num_classes` (a build argument). tests/test_networks.py holds it to the verbatim copy
# in tests/reference/danet.yml, and builds PaddleSeg's own DANet from that file to compare logits.
PADDLESEG_CONFIG = {
    "type": "DANet",
    "backbone": {"type": "ResNet50_vd", "output_stride": 8},
    "backbone_indices": [2, 3],
}
# PaddleSeg's defaults for what the config leaves out (checked against PaddleSeg's signatures by the tests)
PADDLESEG_DEFAULTS = {"align_corners": False, "backbone": {"multi_grid": [1, 1, 1]}}
SETTINGS = {
    **PADDLESEG_DEFAULTS, **PADDLESEG_CONFIG,
    "backbone": {**PADDLESEG_DEFAULTS["backbone"], **PADDLESEG_CONFIG["backbone"]},
}  # fmt: skip
BACKBONE_INDICES = tuple(SETTINGS["backbone_indices"])


def _classifier(in_channels: int, num_classes: int) -> nn.Sequential:
    # The Dropout2D sits at index 0 so the conv's keys end in ".1.weight" as in PaddleSeg.
    return nn.Sequential(nn.Dropout2D(0.1), nn.Conv2D(in_channels, num_classes, 1))


def _zero_gamma(layer: nn.Layer) -> paddle.Tensor:
    return layer.create_parameter(shape=[1], dtype="float32", default_initializer=nn.initializer.Constant(0.0))


class PositionAttention(nn.Layer):
    """Self-attention over pixels: each output pixel mixes every input pixel's value by query-key similarity."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.key_channels = channels // 8
        self.gamma = _zero_gamma(self)
        self.query_conv = nn.Conv2D(channels, self.key_channels, 1)
        self.key_conv = nn.Conv2D(channels, self.key_channels, 1)
        self.value_conv = nn.Conv2D(channels, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        shape = paddle.shape(x)  # a tensor, so H and W stay dynamic under jit.save
        query = self.query_conv(x).reshape([0, self.key_channels, -1]).transpose([0, 2, 1])  # N, HW, C'
        key = self.key_conv(x).reshape([0, self.key_channels, -1])  # N, C', HW
        attention = F.softmax(ops.bmm(query, key), axis=-1)  # N, HW(out), HW(in)
        value = self.value_conv(x).reshape([0, self.channels, -1])  # N, C, HW(in)
        out = ops.bmm(value, attention.transpose([0, 2, 1]))  # N, C, HW(out)
        out = out.reshape([0, self.channels, shape[2], shape[3]])
        return self.gamma * out + x


class ChannelAttention(nn.Layer):
    """Self-attention over channels, computed from the feature map itself (no projections)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.gamma = _zero_gamma(self)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        shape = paddle.shape(x)
        flat = x.reshape([0, self.channels, -1])  # N, C, HW
        energy = ops.bmm(flat, flat.transpose([0, 2, 1]))  # N, C, C
        # DANet subtracts from the row maximum before the softmax (the authors' fix for divergence).
        energy = energy.max(axis=-1, keepdim=True) - energy
        attention = F.softmax(energy, axis=-1)
        out = ops.bmm(attention, flat).reshape([0, self.channels, shape[2], shape[3]])
        return self.gamma * out + x


class DAHead(nn.Layer):
    """Two branches (position and channel attention) on the last backbone stage, summed, then a 1x1 classifier."""

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        inter = in_channels // 4
        self.channel_conv = ConvBNReLU(in_channels, inter, 3)
        self.position_conv = ConvBNReLU(in_channels, inter, 3)
        self.pam = PositionAttention(inter)
        self.cam = ChannelAttention(inter)
        self.conv1 = ConvBNReLU(inter, inter, 3)
        self.conv2 = ConvBNReLU(inter, inter, 3)
        self.aux_head = _classifier(in_channels, num_classes)
        self.aux_head_pam = _classifier(inter, num_classes)
        self.aux_head_cam = _classifier(inter, num_classes)
        self.cls_head = _classifier(inter, num_classes)

    def forward(self, feat: paddle.Tensor) -> list[paddle.Tensor]:
        channel_feat = self.conv1(self.cam(self.channel_conv(feat)))
        position_feat = self.conv2(self.pam(self.position_conv(feat)))
        logit = self.cls_head(position_feat + channel_feat)
        if not self.training:
            return [logit]
        # PaddleSeg 2.8 scores the position branch with aux_head_cam too (aux_head_pam is never used); kept so
        # fine-tuning behaves like PaddleSeg's.
        return [
            logit,
            self.aux_head_cam(channel_feat),
            self.aux_head_cam(position_feat),
            self.aux_head(feat),
        ]


class DANet(nn.Layer):
    """DANet: eval mode returns the main logits at input size; train mode returns [main, cam, pam, aux] logits."""

    def __init__(self, num_classes: int = 19, align_corners: bool = SETTINGS["align_corners"]):
        super().__init__()
        backbone = SETTINGS["backbone"]
        if backbone["type"] != "ResNet50_vd":
            raise ValueError(f"zoo's DANet has a ResNet50_vd backbone, not {backbone['type']}")
        self.backbone = resnet50_vd(output_stride=backbone["output_stride"], multi_grid=backbone["multi_grid"])
        self.head = DAHead(num_classes, self.backbone.feat_channels[BACKBONE_INDICES[-1]])
        self.align_corners = align_corners

    def _upsample(self, logit: paddle.Tensor, size: paddle.Tensor) -> paddle.Tensor:
        # align_mode=1 (source index = dst * scale) is what PaddleSeg's DANet uses; the default 0 gives other numbers.
        return F.interpolate(logit, size, mode="bilinear", align_corners=self.align_corners, align_mode=1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | list[paddle.Tensor]:
        feats = self.backbone(x)
        logits = self.head(feats[BACKBONE_INDICES[-1]])
        size = paddle.shape(x)[2:]
        if not self.training:
            return self._upsample(logits[0], size)
        return [self._upsample(logit, size) for logit in logits]


def build(num_classes: int = 19) -> nn.Layer:
    """DANet on ResNet50_vd (output stride 8) as in PaddleSeg's Cityscapes config, with ``num_classes`` outputs."""
    return DANet(num_classes=num_classes)
