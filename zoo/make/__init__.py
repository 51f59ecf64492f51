"""How a model's artifacts come to be in the cache, along the artifact table's derivation chain
(zoo/store/artifacts.py): pull (download), export (from trained weights), convert (ONNX), quantize (int8/fp16
variants), add (a user's own export), bundle (carried in from another machine); :mod:`zoo.make.ensure` is the one door
that walks the chain."""
