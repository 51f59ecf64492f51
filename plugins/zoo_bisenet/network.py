"""BiSeNetV2 in Paddle dygraph, laid out so PaddleSeg's trained ``.pdparams`` load as they are.

Matches PaddleSeg's ``BiSeNetV2`` (config ``bisenet_cityscapes_1024x1024_160k``): a wide, shallow detail branch
(stride 8, 128 channels), a narrow, deep semantic branch (stride 32, 128 channels), a bilateral guided aggregation
layer fusing the two, and a segmentation head. Four auxiliary heads on the semantic stages exist so their trained
parameters load; they only run in training mode.

Attribute names, their registration order and every layer size reproduce PaddleSeg's state-dict keys exactly
(``tests/reference/bisenet.params.tsv``). All convolutions use ``padding="same"`` like PaddleSeg, so a stride-2
3x3 conv pads 0 before and 1 after on even sizes. Every spatial size is ``ceil(size / stride)`` throughout, so
any input size works; the output is upsampled back to the input size.

In eval mode ``forward`` returns the main logits ``[N, num_classes, H, W]``; in training mode it returns the list
``[main, aux1, aux2, aux3, aux4]``, every entry upsampled to the input size.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn import ops
from zoo.nn.layers import ConvBN, ConvBNReLU

__all__ = ["BiSeNetV2", "build", "PADDLESEG_CONFIG", "PADDLESEG_DEFAULTS"]

# The model section of PaddleSeg release/2.4 configs/bisenet/bisenet_cityscapes_1024x1024_160k.yml, less
# `num_classes` (a build argument). tests/test_networks.py holds it to the verbatim copy in tests/reference/bisenet.yml
# and builds PaddleSeg's own BiSeNetV2 from that file to compare logits.
PADDLESEG_CONFIG = {"type": "BiSeNetV2"}
# PaddleSeg's defaults for what the config leaves out (checked against PaddleSeg's signature by the tests)
PADDLESEG_DEFAULTS = {"lambd": 0.25, "align_corners": False}
SETTINGS = {**PADDLESEG_DEFAULTS, **PADDLESEG_CONFIG}


def _resize_to(x: paddle.Tensor, like: paddle.Tensor, align_corners: bool) -> paddle.Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``like``, read at run time (dynamic shapes)."""
    return F.interpolate(x, paddle.shape(like)[2:], mode="bilinear", align_corners=align_corners)


class DepthwiseConvBN(nn.Layer):
    """Grouped conv (groups = in_channels) then BN; wraps ``ConvBN`` as ``depthwise_conv`` for PaddleSeg's keys.

    ``out_channels`` may be a multiple of ``in_channels`` (channel expansion), as in the gather-and-expansion layers.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **kwargs):
        super().__init__()
        self.depthwise_conv = ConvBN(in_channels, out_channels, kernel_size, groups=in_channels, **kwargs)

    def forward(self, x):
        return self.depthwise_conv(x)


class DetailBranch(nn.Layer):
    """Three stages of plain 3x3 ConvBNReLU, each opening with a stride-2 conv: output stride 8."""

    def __init__(self, in_channels: int, channels: tuple[int, int, int]):
        super().__init__()
        c1, c2, c3 = channels
        self.convs = nn.Sequential(
            ConvBNReLU(in_channels, c1, 3, stride=2),
            ConvBNReLU(c1, c1, 3),
            ConvBNReLU(c1, c2, 3, stride=2),
            ConvBNReLU(c2, c2, 3),
            ConvBNReLU(c2, c2, 3),
            ConvBNReLU(c2, c3, 3, stride=2),
            ConvBNReLU(c3, c3, 3),
            ConvBNReLU(c3, c3, 3),
        )

    def forward(self, x):
        return self.convs(x)


class StemBlock(nn.Layer):
    """Stride-2 conv, then a conv path and a max-pool path (both stride 2) concatenated and fused: stride 4."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 3, stride=2)
        self.left = nn.Sequential(
            ConvBNReLU(out_channels, out_channels // 2, 1),
            ConvBNReLU(out_channels // 2, out_channels, 3, stride=2),
        )
        self.right = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.fuse = ConvBNReLU(out_channels * 2, out_channels, 3)

    def forward(self, x):
        x = self.conv(x)
        x = paddle.concat([self.left(x), self.right(x)], axis=1)
        return self.fuse(x)


class GELayerS1(nn.Layer):
    """Gather-and-expansion layer, stride 1: 3x3 conv, expanding depthwise conv, 1x1 projection, residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, expand: int):
        super().__init__()
        mid = in_channels * expand
        self.conv = nn.Sequential(
            ConvBNReLU(in_channels, in_channels, 3),
            DepthwiseConvBN(in_channels, mid, 3),
            ConvBN(mid, out_channels, 1),
        )

    def forward(self, x):
        return F.relu(self.conv(x) + x)


class GELayerS2(nn.Layer):
    """Gather-and-expansion layer, stride 2, with a depthwise-conv + 1x1 shortcut instead of the identity."""

    def __init__(self, in_channels: int, out_channels: int, expand: int):
        super().__init__()
        mid = in_channels * expand
        self.branch_1 = nn.Sequential(
            ConvBNReLU(in_channels, in_channels, 3),
            DepthwiseConvBN(in_channels, mid, 3, stride=2),
            DepthwiseConvBN(mid, mid, 3),
            ConvBN(mid, out_channels, 1),
        )
        self.branch_2 = nn.Sequential(
            DepthwiseConvBN(in_channels, in_channels, 3, stride=2),
            ConvBN(in_channels, out_channels, 1),
        )

    def forward(self, x):
        return F.relu(self.branch_1(x) + self.branch_2(x))


class ContextEmbedding(nn.Layer):
    """Global average pool, BN, 1x1 ConvBNReLU, broadcast-added to the input, then a plain 3x3 conv (with bias)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2D(1)
        self.bn = nn.BatchNorm2D(in_channels)
        self.conv_1x1 = ConvBNReLU(in_channels, out_channels, 1)
        self.conv_3x3 = nn.Conv2D(out_channels, out_channels, 3, stride=1, padding=1)

    def forward(self, x):
        context = self.conv_1x1(self.bn(self.gap(x)))
        return self.conv_3x3(context + x)


class SemanticBranch(nn.Layer):
    """Stem (stride 4), three gather-and-expansion stages (strides 8, 16, 32), context embedding.

    Returns the stem and stage outputs (for the auxiliary heads) and the final semantic feature map.
    """

    def __init__(self, in_channels: int, channels: tuple[int, int, int, int]):
        super().__init__()
        c1, c3, c4, c5 = channels
        self.stem = StemBlock(in_channels, c1)
        self.stage3 = nn.Sequential(GELayerS2(c1, c3, 6), GELayerS1(c3, c3, 6))
        self.stage4 = nn.Sequential(GELayerS2(c3, c4, 6), GELayerS1(c4, c4, 6))
        self.stage5_4 = nn.Sequential(
            GELayerS2(c4, c5, 6),
            GELayerS1(c5, c5, 6),
            GELayerS1(c5, c5, 6),
            GELayerS1(c5, c5, 6),
        )
        self.ce = ContextEmbedding(c5, c5)

    def forward(self, x):
        s2 = self.stem(x)
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        s5 = self.stage5_4(s4)
        return s2, s3, s4, s5, self.ce(s5)


class BGA(nn.Layer):
    """Bilateral guided aggregation: each branch is gated by a sigmoid of the other, at both resolutions.

    Detail features (stride 8) are gated by upsampled semantic features; downsampled detail features (stride 32)
    are gated by semantic features and the product upsampled back; the sum goes through a 3x3 ConvBN.
    """

    def __init__(self, channels: int, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners
        self.db_branch_keep = nn.Sequential(
            DepthwiseConvBN(channels, channels, 3),
            nn.Conv2D(channels, channels, 1),
        )
        self.db_branch_down = nn.Sequential(
            ConvBN(channels, channels, 3, stride=2),
            nn.AvgPool2D(kernel_size=3, stride=2, padding=1),
        )
        self.sb_branch_keep = nn.Sequential(
            DepthwiseConvBN(channels, channels, 3),
            nn.Conv2D(channels, channels, 1),
            ops.Sigmoid(),
        )
        self.sb_branch_up = ConvBN(channels, channels, 3)
        self.conv = ConvBN(channels, channels, 3)

    def forward(self, dfm, sfm):
        detail_keep = self.db_branch_keep(dfm)
        detail_down = self.db_branch_down(dfm)
        semantic_gate = self.sb_branch_keep(sfm)
        semantic_up = ops.sigmoid(_resize_to(self.sb_branch_up(sfm), detail_keep, self.align_corners))
        detail = detail_keep * semantic_up
        semantic = _resize_to(detail_down * semantic_gate, detail, self.align_corners)
        return self.conv(detail + semantic)


class SegHead(nn.Layer):
    """3x3 ConvBNReLU, dropout 0.1, 1x1 classifier conv."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv_3x3 = nn.Sequential(ConvBNReLU(in_channels, mid_channels, 3), nn.Dropout(0.1))
        self.conv_1x1 = nn.Conv2D(mid_channels, num_classes, 1, stride=1)

    def forward(self, x):
        return self.conv_1x1(self.conv_3x3(x))


class BiSeNetV2(nn.Layer):
    """BiSeNetV2 (Yu et al., 2020, arXiv:2004.02147) with PaddleSeg's layout and parameter names."""

    def __init__(self, num_classes: int = 19, lambd: float = 0.25, align_corners: bool = False, in_channels: int = 3):
        super().__init__()
        db_channels = (64, 64, 128)
        sb_channels = (int(64 * lambd), int(128 * lambd), 64, 128)
        mid_channels = 128
        self.align_corners = align_corners

        self.db = DetailBranch(in_channels, db_channels)
        self.sb = SemanticBranch(in_channels, sb_channels)
        self.bga = BGA(mid_channels, align_corners)
        c1, c3, c4, c5 = sb_channels
        self.aux_head1 = SegHead(c1, c1, num_classes)
        self.aux_head2 = SegHead(c3, c3, num_classes)
        self.aux_head3 = SegHead(c4, c4, num_classes)
        self.aux_head4 = SegHead(c5, c5, num_classes)
        self.head = SegHead(mid_channels, mid_channels, num_classes)

    def forward(self, x):
        dfm = self.db(x)
        s2, s3, s4, s5, sfm = self.sb(x)
        logit = _resize_to(self.head(self.bga(dfm, sfm)), x, self.align_corners)
        if not self.training:
            return logit
        aux = [
            self.aux_head1(s2),
            self.aux_head2(s3),
            self.aux_head3(s4),
            self.aux_head4(s5),
        ]
        return [logit] + [_resize_to(a, x, self.align_corners) for a in aux]


def build(num_classes: int = 19) -> nn.Layer:
    """BiSeNetV2 as in PaddleSeg's ``bisenet_cityscapes_1024x1024_160k`` (lambd 0.25, align_corners False)."""
    return BiSeNetV2(num_classes=num_classes, lambd=SETTINGS["lambd"], align_corners=SETTINGS["align_corners"])
