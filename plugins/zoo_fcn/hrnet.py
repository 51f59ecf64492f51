"""HRNet_W18 backbone with PaddleSeg's parameter names, so its trained weights load unchanged.

Layout: a two-conv stem (stride 4), one stage of bottlenecks, then stages 2-4 of parallel branches at
strides 4/8/16/32, each stage entered through a transition and built from modules of per-branch basic blocks
followed by an all-to-all fuse. The output is every branch upsampled to stride 4 and concatenated (270 channels).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn.layers import ConvBN, ConvBNReLU

STEM_CHANNELS = 64
LAYER1_FILTERS = 64  # bottleneck width; outputs 4x this
NUM_BLOCKS = 4  # per bottleneck layer and per branch
STAGES = ((1, (18, 36)), (4, (18, 36, 72)), (3, (18, 36, 72, 144)))  # (modules, channels per branch) of stages 2-4


def _upsample(x, size):
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


class Bottleneck(nn.Layer):
    """1x1 -> 3x3 -> 1x1 (x4 channels) with a residual; ``conv_down`` projects the residual when channels change."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, filters, 1, bias_attr=False)
        self.conv2 = ConvBNReLU(filters, filters, 3, bias_attr=False)
        self.conv3 = ConvBN(filters, filters * 4, 1, bias_attr=False)
        self.conv_down = ConvBN(in_channels, filters * 4, 1, bias_attr=False) if in_channels != filters * 4 else None

    def forward(self, x):
        shortcut = x if self.conv_down is None else self.conv_down(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


class BasicBlock(nn.Layer):
    """Two 3x3 convs with an identity residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvBNReLU(channels, channels, 3, bias_attr=False)
        self.conv2 = ConvBN(channels, channels, 3, bias_attr=False)

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + x)


class Transition(nn.Layer):
    """Adapts existing branches whose width changes and opens one new, half-resolution branch from the last."""

    def __init__(self, name: str, in_channels: tuple[int, ...], out_channels: tuple[int, ...]):
        super().__init__()
        self.convs = []  # one per output branch; None passes the input branch through
        for i, cout in enumerate(out_channels):
            new = i >= len(in_channels)
            cin = in_channels[-1] if new else in_channels[i]
            conv = None
            if new or cin != cout:
                conv = ConvBNReLU(cin, cout, 3, stride=2 if new else 1, bias_attr=False)
                self.add_sublayer(f"transition_{name}_layer_{i + 1}", conv)
            self.convs.append(conv)

    def forward(self, xs):
        outs = []
        for i, conv in enumerate(self.convs):
            x = xs[min(i, len(xs) - 1)]
            outs.append(x if conv is None else conv(x))
        return outs


class Branches(nn.Layer):
    """Runs each branch through its own chain of basic blocks."""

    def __init__(self, name: str, channels: tuple[int, ...]):
        super().__init__()
        self.chains = []
        for i, ch in enumerate(channels):
            blocks = [(f"bb_{name}_branch_layer_{i + 1}_{j + 1}", BasicBlock(ch)) for j in range(NUM_BLOCKS)]
            self.chains.append([self.add_sublayer(key, block) for key, block in blocks])

    def forward(self, xs):
        outs = []
        for x, chain in zip(xs, self.chains):
            for block in chain:
                x = block(x)
            outs.append(x)
        return outs


class Fuse(nn.Layer):
    """Output branch i = relu(sum over inputs j of input j brought to branch i's width and resolution).

    Lower-resolution inputs (j > i): 1x1 ConvBN, then bilinear upsampling. Higher-resolution inputs (j < i):
    i - j stride-2 3x3 convs, ReLU between them but not after the last.
    """

    def __init__(self, name: str, channels: tuple[int, ...]):
        super().__init__()
        self.paths = []  # paths[i][j]: layers taking input j to output i; empty when j == i
        for i, cout in enumerate(channels):
            row = []
            for j, cin in enumerate(channels):
                path = []
                if j > i:
                    conv = ConvBN(cin, cout, 1, bias_attr=False)
                    path.append(self.add_sublayer(f"residual_{name}_layer_{i + 1}_{j + 1}", conv))
                for k in range(i - j):
                    last = k == i - j - 1
                    conv = (ConvBN if last else ConvBNReLU)(cin, cout if last else cin, 3, stride=2, bias_attr=False)
                    path.append(self.add_sublayer(f"residual_{name}_layer_{i + 1}_{j + 1}_{k + 1}", conv))
                row.append(path)
            self.paths.append(row)

    def forward(self, xs):
        outs = []
        for i, row in enumerate(self.paths):
            out = xs[i]
            size = paddle.shape(xs[i])[-2:]
            for j, path in enumerate(row):
                if j != i:
                    y = xs[j]
                    for layer in path:
                        y = layer(y)
                    if j > i:
                        y = _upsample(y, size)
                    out = out + y
            outs.append(F.relu(out))
        return outs


class HRModule(nn.Layer):
    def __init__(self, name: str, channels: tuple[int, ...]):
        super().__init__()
        self.branches_func = Branches(name, channels)
        self.fuse_func = Fuse(name, channels)

    def forward(self, xs):
        return self.fuse_func(self.branches_func(xs))


class HRNet_W18(nn.Layer):
    """HRNet_W18; ``forward`` returns the 270-channel stride-4 feature map."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv_layer1_1 = ConvBNReLU(in_channels, STEM_CHANNELS, 3, stride=2, bias_attr=False)
        self.conv_layer1_2 = ConvBNReLU(STEM_CHANNELS, STEM_CHANNELS, 3, stride=2, bias_attr=False)
        widths = [STEM_CHANNELS] + [LAYER1_FILTERS * 4] * (NUM_BLOCKS - 1)
        self.la1 = nn.Sequential(*[(f"bb_layer2_{i + 1}", Bottleneck(w, LAYER1_FILTERS)) for i, w in enumerate(widths)])
        self.stages = []  # (transition, stage) pairs for stages 2-4
        prev = (LAYER1_FILTERS * 4,)
        for s, (num_modules, channels) in enumerate(STAGES, start=2):
            tr = self.add_sublayer(f"tr{s - 1}", Transition(f"tr{s - 1}", prev, channels))
            modules = [(f"stage_st{s}_{m + 1}", HRModule(f"st{s}_{m + 1}", channels)) for m in range(num_modules)]
            self.stages.append((tr, self.add_sublayer(f"st{s}", nn.Sequential(*modules))))
            prev = channels
        self.feat_channels = [sum(prev)]

    def forward(self, x):
        xs = [self.la1(self.conv_layer1_2(self.conv_layer1_1(x)))]
        for transition, stage in self.stages:
            xs = stage(transition(xs))
        size = paddle.shape(xs[0])[2:]
        return paddle.concat([xs[0]] + [_upsample(y, size) for y in xs[1:]], axis=1)
