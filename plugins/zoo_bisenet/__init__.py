"""zoo's built-in bisenet architecture plugin, registered under the ``zoo.architectures`` entry points."""

from zoo.registry.spec import Architecture, InputSpec

PLUGIN = Architecture(
    name="bisenet",
    summary="BiSeNetV2: real-time detail + semantic branches (PaddleSeg BiSeNetV2)",
    input=InputSpec(),  # PaddleSeg's Cityscapes preprocessing: RGB, /255, (x - 0.5) / 0.5, no resize
    builder="zoo_bisenet.network:build",
)
