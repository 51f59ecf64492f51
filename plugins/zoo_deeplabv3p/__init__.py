"""zoo's built-in deeplabv3p architecture plugin, registered under the ``zoo.architectures`` entry points."""

from zoo.registry.spec import Architecture, InputSpec

PLUGIN = Architecture(
    name="deeplabv3p",
    summary="DeepLabV3+: ASPP + low-level decoder on ResNet50_vd, output stride 8",
    input=InputSpec(),  # PaddleSeg's Cityscapes preprocessing: RGB, /255, (x - 0.5) / 0.5, no resize
    builder="zoo_deeplabv3p.network:build",
)
