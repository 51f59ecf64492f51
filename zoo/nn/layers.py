"""Conv/BN blocks with PaddleSeg's parameter names and eval-mode numerics."""

from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F


class ConvBN(nn.Layer):
    """Conv2D followed by BatchNorm (eps 1e-5), no activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int | str = "same", **kwargs):
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, padding=padding, **kwargs)
        self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class ConvBNReLU(ConvBN):
    """Conv2D, BatchNorm, ReLU."""

    def forward(self, x):
        return F.relu(super().forward(x))


class SeparableConvBNReLU(nn.Layer):
    """Depthwise ConvBN then pointwise ConvBNReLU (PaddleSeg spells the second one ``piontwise_conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int | str = "same", **kwargs):
        super().__init__()
        self.depthwise_conv = ConvBN(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels, **kwargs)
        self.piontwise_conv = ConvBNReLU(in_channels, out_channels, kernel_size=1, groups=1)

    def forward(self, x):
        return self.piontwise_conv(self.depthwise_conv(x))


# --- ASPP (DeepLabV3 / DeepLabV3P) -------------------------------------------------------------------------------
import paddle  # noqa: E402  (appended section; the classes above do not need it)


class ASPPModule(nn.Layer):
    """Atrous spatial pyramid pooling with PaddleSeg's parameter names and eval numerics.

    One branch per ratio in ``aspp_ratios`` (``aspp_blocks.<i>``): ratio 1 is a 1x1 ConvBNReLU, other ratios a 3x3
    ConvBNReLU (or SeparableConvBNReLU with ``use_sep_conv``) with dilation = padding = ratio. With
    ``image_pooling`` a ``global_avg_pool`` branch (global average pool, bias-free 1x1 ConvBNReLU) is bilinearly
    resized back to the input size and concatenated last. The concatenation goes through a 1x1 ConvBNReLU
    ``conv_bn_relu`` and dropout 0.1 (identity in eval mode).
    """

    def __init__(
        self,
        aspp_ratios,
        in_channels: int,
        out_channels: int,
        align_corners: bool,
        use_sep_conv: bool = False,
        image_pooling: bool = False,
    ):
        super().__init__()
        self.align_corners = align_corners
        self.image_pooling = image_pooling
        self.aspp_blocks = nn.LayerList()
        for ratio in aspp_ratios:
            if ratio == 1:
                block = ConvBNReLU(in_channels, out_channels, kernel_size=1, dilation=1, padding=0)
            elif use_sep_conv:
                block = SeparableConvBNReLU(in_channels, out_channels, kernel_size=3, dilation=ratio, padding=ratio)
            else:
                block = ConvBNReLU(in_channels, out_channels, kernel_size=3, dilation=ratio, padding=ratio)
            self.aspp_blocks.append(block)
        n_branches = len(self.aspp_blocks)
        if image_pooling:
            self.global_avg_pool = nn.Sequential(
                nn.AdaptiveAvgPool2D(output_size=(1, 1)),
                ConvBNReLU(in_channels, out_channels, kernel_size=1, bias_attr=False),
            )
            n_branches += 1
        self.conv_bn_relu = ConvBNReLU(out_channels * n_branches, out_channels, kernel_size=1)
        self.dropout = nn.Dropout(p=0.1)

    def forward(self, x):
        size = paddle.shape(x)[2:]
        outs = [block(x) for block in self.aspp_blocks]
        if self.image_pooling:
            pooled = self.global_avg_pool(x)
            outs.append(F.interpolate(pooled, size, mode="bilinear", align_corners=self.align_corners))
        y = self.conv_bn_relu(paddle.concat(outs, axis=1))
        return self.dropout(y)
