"""zoo-unet: a third-party architecture plugin, as a plugin author would ship it.

It is installed for tests by putting its folder (with its ``.dist-info``) on ``sys.path``; the entry point in
``zoo_unet-0.1.0.dist-info/entry_points.txt`` is what makes zoo find it.
"""

from pathlib import Path

from zoo.registry.spec import Architecture, InputSpec

PLUGIN = Architecture(
    name="unet",
    summary="A tiny two-level U-Net (test plugin)",
    input=InputSpec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),  # ImageNet statistics
    labels=("background", "road", "vehicle", "sky"),
    palette=((0, 0, 0), (128, 64, 128), (0, 0, 142), (70, 130, 180)),
    builder="zoo_unet.network:build",
    registries=(str(Path(__file__).with_name("registry.toml")),),
)
