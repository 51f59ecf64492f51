"""zoo's built-in danet architecture plugin, registered under the ``zoo.architectures`` entry points."""

from zoo.registry.spec import Architecture, InputSpec

PLUGIN = Architecture(
    name="danet",
    summary="DANet: position + channel attention on ResNet50_vd, output stride 8",
    input=InputSpec(),  # PaddleSeg's Cityscapes preprocessing: RGB, /255, (x - 0.5) / 0.5, no resize
    builder="zoo_danet.network:build",
)
