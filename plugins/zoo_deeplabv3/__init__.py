"""zoo's built-in deeplabv3 architecture plugin, registered under the ``zoo.architectures`` entry points."""

from zoo.registry.spec import Architecture, InputSpec

PLUGIN = Architecture(
    name="deeplabv3",
    summary="DeepLabV3: ASPP on ResNet50_vd, output stride 8",
    input=InputSpec(),  # PaddleSeg's Cityscapes preprocessing: RGB, /255, (x - 0.5) / 0.5, no resize
    builder="zoo_deeplabv3.network:build",
)
