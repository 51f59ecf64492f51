"""Ops that paddle 3.3 builds only as PIR ops, made to work in legacy (non-PIR) static programs too.

Published PaddleSeg models are legacy ``model.pdmodel`` programs, and Paddle Inference runs those with oneDNN (much
faster on CPU), so zoo can export that format as well. In paddle 3.3 ``argmax``, ``sigmoid`` and ``bmm`` call PIR-only
kernels even while a legacy program is being built; there these helpers append the classic op instead. In dygraph and
PIR they are the ordinary paddle calls.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F


def _legacy_static() -> bool:
    return not (paddle.in_dynamic_mode() or paddle.framework.in_pir_mode())


def _append(op_type: str, inputs: dict, attrs: dict, dtype):
    helper = paddle.base.layer_helper.LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": out}, attrs=attrs)
    return out


def sigmoid(x):
    return _append("sigmoid", {"X": x}, {}, x.dtype) if _legacy_static() else F.sigmoid(x)


def bmm(x, y):
    return _append("bmm", {"X": x, "Y": y}, {}, x.dtype) if _legacy_static() else paddle.bmm(x, y)


def argmax_int32(x, axis: int = 1):
    """Class ids along ``axis`` as int32, like PaddleSeg's exports."""
    if not _legacy_static():
        return paddle.argmax(x, axis=axis, dtype="int32")
    attrs = {"axis": axis, "keepdims": False, "flatten": False, "dtype": paddle.base.core.VarDesc.VarType.INT32}
    return _append("arg_max", {"X": x}, attrs, "int32")


class Sigmoid(paddle.nn.Layer):
    """``nn.Sigmoid`` that also builds in legacy static programs."""

    def forward(self, x):
        return sigmoid(x)
