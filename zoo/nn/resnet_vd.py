"""ResNet-vd backbone (bottleneck variants) matching PaddleSeg's ``ResNet50_vd`` state-dict layout and numerics.

Layout facts kept from PaddleSeg so its ``.pdparams`` load unchanged:

* stem: three 3x3 conv-BN-ReLU layers ``conv1_1`` (stride 2, 3->32), ``conv1_2`` (32->32), ``conv1_3`` (32->64),
  then a 3x3 / stride 2 / pad 1 max-pool;
* blocks are registered directly on the backbone as ``bb_<stage>_<block>``; each bottleneck has ``conv0`` (1x1),
  ``conv1`` (3x3, carries the stride and dilation), ``conv2`` (1x1, x4 channels, no activation) and, on the first
  block of a stage, a projection ``short`` (1x1) that is preceded by a 2x2 ceil-mode average pool when the block
  downsamples (the "vd" trick);
* each conv has no bias; BatchNorm uses epsilon 1e-5 and momentum 0.9 (Paddle's defaults);
* with ``output_stride`` 8 stages 2 and 3 are dilated by 2 and 4 instead of strided (16: stage 3 by 2), and the
  dilation of the blocks of stage 3 is further multiplied by ``multi_grid``.

``forward`` returns the list of the four stage outputs (strides 4, 8, 8, 8 for ``output_stride`` 8).
"""

from __future__ import annotations

from typing import Sequence

import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["ResNetVd", "resnet50_vd"]

_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 12, 48, 3)}
_STAGE_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4


class _ConvBNLayer(nn.Layer):
    """Optional 2x2 average pool, bias-free Conv2D, BatchNorm, optional ReLU.

    Sub-layer names (``_conv``, ``_batch_norm``) are PaddleSeg's. Padding is ``(k - 1) // 2`` for undilated
    convolutions and ``dilation`` otherwise (dilation is only used with 3x3 kernels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        avg_pool_first: bool = False,
        relu: bool = False,
    ):
        super().__init__()
        if dilation != 1 and kernel_size != 3:
            raise ValueError("dilated convolutions must use a 3x3 kernel")
        self._avg_pool_first = avg_pool_first
        self._relu = relu
        if avg_pool_first:
            self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True)
        padding = (kernel_size - 1) // 2 if dilation == 1 else dilation
        self._conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias_attr=False,
        )
        self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        if self._avg_pool_first:
            x = self._pool2d_avg(x)
        x = self._batch_norm(self._conv(x))
        if self._relu:
            x = F.relu(x)
        return x


class _Bottleneck(nn.Layer):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4) residual block."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int,
        dilation: int,
        project: bool,
        first_of_network: bool,
    ):
        super().__init__()
        out_channels = width * _EXPANSION
        self.conv0 = _ConvBNLayer(in_channels, width, 1, relu=True)
        self.conv1 = _ConvBNLayer(width, width, 3, stride=stride, dilation=dilation, relu=True)
        self.conv2 = _ConvBNLayer(width, out_channels, 1)
        self._project = project
        if project:
            # The stride of a downsampling block is taken by an average pool on the shortcut, not the 1x1 conv.
            self.short = _ConvBNLayer(
                in_channels, out_channels, 1, avg_pool_first=not (first_of_network or stride == 1)
            )

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        shortcut = self.short(x) if self._project else x
        return F.relu(shortcut + y)


class ResNetVd(nn.Layer):
    """ResNet-vd (bottleneck depths 50/101/152/200) returning the four stage feature maps.

    Args:
        layers: network depth, 50 for ResNet50_vd.
        output_stride: 8, 16 or 32 (32 = no dilation).
        multi_grid: dilation multipliers of the blocks of the last stage (length = its block count, 3).
        in_channels: input image channels.
    """

    def __init__(
        self,
        layers: int = 50,
        output_stride: int = 8,
        multi_grid: Sequence[int] = (1, 1, 1),
        in_channels: int = 3,
    ):
        super().__init__()
        if layers not in _DEPTHS:
            raise ValueError(f"unsupported ResNet_vd depth {layers}; supported: {sorted(_DEPTHS)}")
        if output_stride == 8:
            stage_dilation = {2: 2, 3: 4}
        elif output_stride == 16:
            stage_dilation = {3: 2}
        elif output_stride == 32:
            stage_dilation = {}
        else:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        depths = _DEPTHS[layers]
        multi_grid = tuple(int(m) for m in multi_grid)
        if len(multi_grid) < depths[3]:
            raise ValueError(f"multi_grid needs {depths[3]} entries, got {multi_grid}")

        self.layers = layers
        self.output_stride = output_stride
        self.multi_grid = multi_grid
        self.feat_channels = [w * _EXPANSION for w in _STAGE_WIDTHS]

        self.conv1_1 = _ConvBNLayer(in_channels, 32, 3, stride=2, relu=True)
        self.conv1_2 = _ConvBNLayer(32, 32, 3, relu=True)
        self.conv1_3 = _ConvBNLayer(32, 64, 3, relu=True)
        self.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

        # Blocks are registered on self (names bb_<stage>_<block>); the stage structure is kept as a plain list.
        self.stage_list: list[list[nn.Layer]] = []
        in_ch = 64
        for stage, (depth, width) in enumerate(zip(depths, _STAGE_WIDTHS)):
            blocks = []
            for i in range(depth):
                dilation = stage_dilation.get(stage, 1)
                if stage == 3:
                    dilation *= multi_grid[i]
                stride = 2 if (i == 0 and stage != 0 and dilation == 1) else 1
                block = _Bottleneck(
                    in_ch,
                    width,
                    stride=stride,
                    dilation=dilation,
                    project=(i == 0),
                    first_of_network=(stage == 0 and i == 0),
                )
                blocks.append(self.add_sublayer(f"bb_{stage}_{i}", block))
                in_ch = width * _EXPANSION
            self.stage_list.append(blocks)

    def forward(self, x):
        x = self.conv1_3(self.conv1_2(self.conv1_1(x)))
        x = self.pool2d_max(x)
        feats = []
        for blocks in self.stage_list:
            for block in blocks:
                x = block(x)
            feats.append(x)
        return feats


def resnet50_vd(output_stride: int = 8, multi_grid: Sequence[int] = (1, 2, 4), in_channels: int = 3) -> ResNetVd:
    """PaddleSeg ``ResNet50_vd`` with the given output stride and last-stage multi-grid."""
    return ResNetVd(layers=50, output_stride=output_stride, multi_grid=multi_grid, in_channels=in_channels)
