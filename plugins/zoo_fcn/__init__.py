"""zoo's built-in fcn architecture plugin, registered under the ``zoo.architectures`` entry points."""

from zoo.registry.spec import Architecture, InputSpec

PLUGIN = Architecture(
    name="fcn",
    summary="FCN on HRNet-W18",
    input=InputSpec(),  # PaddleSeg's Cityscapes preprocessing: RGB, /255, (x - 0.5) / 0.5, no resize
    builder="zoo_fcn.network:build",
)
