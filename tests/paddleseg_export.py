"""Export a network built from PaddleSeg's own classes the way PaddleSeg's ``tools/export.py`` does (test oracle).

Run as a child process with the oracle on ``sys.path`` (``ZOO_TEST_PADDLESEG_PATH``) — ``FLAGS_enable_pir_api=0``
in its environment gives the legacy ``model.pdmodel`` program, else Paddle 3 writes PIR ``model.json``. Like
``tools/export.py``: PaddleSeg's ``WrappedModel`` adds the output op, the input spec is ``[None, 3, None, None]`` or
the fixed ``--input_shape``, ``paddle.jit.save`` writes ``model.*``, and ``deploy.yaml`` is
``{"Deploy": {model, params, transforms (the val transforms), input_shape, output_op, output_dtype}}``.

    python tests/paddleseg_export.py OUT_DIR '{"arch": "ppliteseg", "num_classes": 4, "seed": 3,
        "input_shape": [1, 3, 64, 96], "transforms": [...], "output_op": "argmax"}'
"""

from __future__ import annotations

import json
import os
import sys


def build(arch: str, num_classes: int):
    from paddleseg import models
    from paddleseg.models import backbones

    if arch == "ppliteseg":  # PP-LiteSeg-T: STDC1 backbone, PaddleSeg's config values for it
        return models.PPLiteSeg(num_classes=num_classes, backbone=backbones.STDC1(), arm_out_chs=[32, 64, 128],
                                seg_head_inter_chs=[32, 64, 64])  # fmt: skip
    if arch == "unet":
        return models.UNet(num_classes=num_classes)
    raise SystemExit(f"unknown arch {arch}")


def _legacy_ops(paddle) -> None:
    """paddle 3.3 builds argmax and sigmoid only as PIR ops, even in a legacy program: append the classic ops."""
    import paddle.nn.functional as F

    def append(op_type: str, inputs: dict, attrs: dict, dtype):
        helper = paddle.base.layer_helper.LayerHelper(op_type)
        out = helper.create_variable_for_type_inference(dtype)
        helper.append_op(type=op_type, inputs=inputs, outputs={"Out": out}, attrs=attrs)
        return out

    def argmax(x, axis=None, keepdim=False, dtype="int64", name=None):
        code = paddle.base.core.VarDesc.VarType.INT32 if dtype == "int32" else paddle.base.core.VarDesc.VarType.INT64
        return append("arg_max", {"X": x}, {"axis": axis, "keepdims": keepdim, "flatten": False, "dtype": code}, dtype)

    paddle.argmax = argmax
    F.sigmoid = lambda x, name=None: append("sigmoid", {"X": x}, {}, x.dtype)


def main(out_dir: str, options: dict) -> None:
    sys.path += [p for p in os.environ.get("ZOO_TEST_PADDLESEG_PATH", "").split(os.pathsep) if p]
    import numpy as np
    import paddle
    import yaml
    from paddleseg.deploy.export import WrappedModel

    paddle.seed(options.get("seed", 0))
    np.random.seed(options.get("seed", 0))
    model = build(options["arch"], options["num_classes"])
    # seeded weights with some spread (default inits give near-constant logits that a wrong check would not see):
    # He-scaled convolutions, batch-norm statistics that stay valid (positive variance)
    rng = np.random.default_rng(options.get("seed", 0))
    for key, value in model.state_dict().items():
        shape = value.shape
        if key.endswith("_variance"):
            new = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("_mean"):
            new = rng.normal(0, 0.1, shape)
        elif len(shape) == 4:
            new = rng.normal(0, (2.0 / max(1, int(np.prod(shape[1:])))) ** 0.5, shape)
        elif len(shape) == 1 and key.endswith("weight"):
            new = 1 + rng.normal(0, 0.2, shape)
        else:
            new = rng.normal(0, 0.2, shape)
        value.set_value(new.astype(str(value.numpy().dtype)))
    output_op = options.get("output_op", "argmax")
    shape = options.get("input_shape") or [None, 3, None, None]
    if paddle.framework.use_pir_api():
        if output_op != "none":
            model = WrappedModel(model, output_op)
        model.eval()
        static = paddle.jit.to_static(model, input_spec=[paddle.static.InputSpec(shape=shape, dtype="float32")])
        paddle.jit.save(static, os.path.join(out_dir, "model"))
    else:  # Paddle 3's to_static cannot trace these networks into a legacy program: build the static graph directly
        values = {k: v.numpy() for k, v in model.state_dict().items()}
        paddle.enable_static()
        _legacy_ops(paddle)
        main_prog, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main_prog, startup):
            x = paddle.static.data("x", shape, "float32")
            net = build(options["arch"], options["num_classes"])
            net.eval()
            wrapped = WrappedModel(net, output_op) if output_op != "none" else net
            out = wrapped(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        for key, var in net.state_dict().items():
            var.set_value(values[key])
        paddle.static.save_inference_model(os.path.join(out_dir, "model"), [x], [out], exe, program=main_prog)
    program = "model.json" if os.path.exists(os.path.join(out_dir, "model.json")) else "model.pdmodel"
    deploy = {"Deploy": {"model": program, "params": "model.pdiparams", "transforms": options["transforms"],
                         "input_shape": shape, "output_op": output_op,
                         "output_dtype": "int32" if output_op == "argmax" else "float32"}}  # fmt: skip
    with open(os.path.join(out_dir, "deploy.yaml"), "w") as f:
        yaml.dump(deploy, f)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
