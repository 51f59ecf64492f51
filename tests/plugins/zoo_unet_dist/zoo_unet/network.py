"""A small U-Net: two down steps, two up steps, logits at input size."""

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.nn.layers import ConvBNReLU


class UNet(nn.Layer):
    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.enc1 = ConvBNReLU(3, width, 3)
        self.enc2 = ConvBNReLU(width, width * 2, 3)
        self.mid = ConvBNReLU(width * 2, width * 4, 3)
        self.dec2 = ConvBNReLU(width * 6, width * 2, 3)
        self.dec1 = ConvBNReLU(width * 3, width, 3)
        self.cls = nn.Conv2D(width, num_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2, ceil_mode=True))
        m = self.mid(F.max_pool2d(e2, 2, ceil_mode=True))
        d2 = self.dec2(paddle.concat([F.interpolate(m, paddle.shape(e2)[2:], mode="bilinear"), e2], axis=1))
        d1 = self.dec1(paddle.concat([F.interpolate(d2, paddle.shape(e1)[2:], mode="bilinear"), e1], axis=1))
        return self.cls(d1)


def build(num_classes: int = 4) -> nn.Layer:
    return UNet(num_classes)
