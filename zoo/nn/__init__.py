"""Paddle building blocks shared by the architecture plugins.

Parameter names follow PaddleSeg's (``_conv``, ``_batch_norm``, ...) so that official ``.pdparams`` state dicts load
without renaming. Importing this package imports paddle: only network builders should import it.
"""
