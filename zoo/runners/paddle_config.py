"""The fastest Paddle Inference CPU settings that give correct results, for each program format.

Both formats run on oneDNN. A PIR ``model.json`` program (what ``paddle.jit.save`` writes in Paddle 3) needs two
passes deleted first; a legacy ``model.pdmodel`` program needs nothing. Measured with paddlepaddle 3.3.1 (CPU wheel,
oneDNN 3.6.2) on 2 threads, input 1×3×512×1024, argmax output, seeded random weights: median seconds of 4 or more
runs after a warm-up run, on a shared 2-core machine (repeats agree within ~10%):

    network      PIR oneDNN off   PIR, this config   legacy oneDNN on   legacy oneDNN off
    bisenet           1.25             0.29               0.25               1.09
    fcn               3.46             0.75               0.64               2.96
    deeplabv3p        9.76             2.89               2.45               8.81
    deeplabv3        15.1              3.18               2.89              12.2
    danet            16.9              6.34               5.11              15.1

So a PIR program runs 2.7–4.8× faster than with oneDNN off, and within 1.1–1.25× of the legacy program on oneDNN.
Creating the predictor costs more with oneDNN (fcn: ~3 s for PIR, ~14 s for legacy, 0.5 s with oneDNN off; the other
four networks stay under ~1 s).

Why:

* ``onednn_placement_pass`` moves every op that has a oneDNN kernel into the oneDNN dialect, ``bilinear_interp``
  included. The oneDNN instruction then cannot convert that op's ``scale`` attribute, and the first run fails with
  ``ConvertPirAttribute2RuntimeAttribute not support [pir::ArrayAttribute<pir::DoubleAttribute>]`` (Paddle issue
  #79749). The legacy ``mkldnn_placement_pass`` has skipped interpolation since Paddle 2.5, so legacy programs run.
* Deleting only that pass keeps the oneDNN fusion passes, which build ``onednn_op.fused_conv2d`` (convolution + batch
  norm + bias + residual add + relu) themselves: nearly all of a segmentation network's time. Pooling, concat,
  interpolation, attention and the output op run on Paddle's CPU kernels (the legacy program keeps more of them on
  oneDNN, most likely the remaining gap). Logits match the oneDNN-off run to ≤3e-6 of their scale and the labels are
  identical, for all five networks.
* ``transfer_layout_pass`` moves max-pooling to NHWC between two transposes, which is slower on CPU: deleting it saves
  5–7% on deeplabv3, deeplabv3p and danet (their ResNet stem) and changes nothing for bisenet and fcn.

What does not work: ``set_mkldnn_op``/``set_onednn_op`` (only the legacy placement pass reads that list),
``switch_ir_optim(False)`` (oneDNN placement still happens; same error), ``set_optimization_level(0|1)`` (runs, but no
op reaches oneDNN, so it is as slow as oneDNN off), ``enable_memory_optim()`` (a PIR predictor then fails: ``Not find
predictor_id 0 and pass_name memory_optimize_pass``), ``enable_openvino_engine`` (accepted, but ignored by this wheel)
and ``enable_new_ir()`` for a legacy program (``Type of attribute: fuse_activation is not pir::StrAttribute``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.errors import BackendError

FORMATS = {".json": "pir", ".pdmodel": "legacy"}
# the PIR oneDNN passes that break bilinear_interp, or slow max-pooling down (see the module docstring)
PIR_DELETED_PASSES = ("onednn_placement_pass", "transfer_layout_pass")


def program_format(program: Path) -> str:
    """'pir' for model.json, 'legacy' for model.pdmodel."""
    fmt = FORMATS.get(Path(program).suffix)
    if fmt is None:
        raise BackendError(f"{program} is not a Paddle program; expected model.json (PIR) or model.pdmodel (legacy)")
    return fmt


def configure(config: Any, program: Path, *, threads: int | None, onednn: bool = True) -> dict[str, Any]:
    """Set a CPU ``paddle.inference.Config`` up for ``program``'s format; return what was done.

    ``threads`` defaults to every core. ``onednn=False`` forces Paddle's plain CPU kernels (slow; the reference path).
    The result says ``format`` ("pir"|"legacy"), ``mkldnn``, ``threads``, ``deleted_passes`` and a one-line ``note``.
    """
    fmt = program_format(program)
    n = int(threads or os.cpu_count() or 1)
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(n)
    deleted: list[str] = []
    if not onednn:
        config.disable_mkldnn()  # oneDNN is on by default in Paddle 3's Config
        note = "oneDNN off by request: Paddle's plain CPU kernels"
    elif fmt == "pir":
        config.enable_mkldnn()
        deleted = list(PIR_DELETED_PASSES)
        for name in deleted:
            config.delete_pass(name)
        note = "oneDNN fused convolutions; interpolation and pooling on Paddle's CPU kernels"
    else:
        config.enable_new_ir(False)  # translated to PIR, a legacy program's oneDNN attributes fail to load
        config.enable_mkldnn()
        note = "oneDNN with the legacy passes"
    return {"format": fmt, "mkldnn": onednn, "threads": n, "deleted_passes": deleted, "note": note}


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16), as oneDNN's bf16 kernels need."""
    from zoo.util import cpu_flags

    return not cpu_flags().isdisjoint({"avx512_bf16", "amx_bf16"})


def enable_bf16(config: Any, program: Path) -> dict[str, Any]:
    """Turn on oneDNN's bfloat16 passes (``enable_mkldnn_bfloat16``) on a CPU config ``configure`` set up.

    Only PIR programs: on a legacy ``model.pdmodel`` (what published PaddleSeg exports are) paddlepaddle 3.3.1 creates
    the predictor and then fails at the first run for all five architectures with ``(InvalidArgument) The type of data
    we are trying to retrieve (float32) does not match the type of data (bfloat16) ... [operator < elementwise_add >
    error]`` — so a legacy program is refused here, before any work, with what to use instead. A CPU without native
    bf16 would emulate it far slower than float32, so it is refused too.
    """
    if program_format(program) != "pir":
        raise BackendError(
            f"Paddle Inference's bf16 runs only PIR programs (model.json) and {Path(program).parent} holds a legacy "
            "model.pdmodel; use --backend openvino --precision bf16 (same weights, through ONNX), or export a PIR "
            "program with 'zoo export NAME --weights FILE'"
        )
    if not cpu_has_bf16():
        raise BackendError("this CPU has no native bfloat16 (AVX-512 BF16 or AMX); use --precision fp32")
    config.enable_mkldnn_bfloat16()
    return {"bf16": "enable_mkldnn_bfloat16()"}


def disable_glog_info(config: Any | None = None) -> None:
    """Silence Paddle's log: glog INFO/WARNING lines, and the pass-by-pass lines of ``config``'s predictor.

    glog reads ``GLOG_minloglevel`` once, when paddle is first imported, so this silences import-time lines only when
    called before that (and always in child processes). ``config.disable_glog_info()`` mutes glog for the rest of the
    process once its predictor is created, and the "Running PIR pass" lines of that predictor.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    if config is not None:
        config.disable_glog_info()
