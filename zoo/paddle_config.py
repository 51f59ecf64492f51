"""The fastest Paddle Inference CPU settings that give correct results, for each program format.

Both formats run on oneDNN. A PIR ``model.json`` program (what ``paddle.jit.save`` writes in Paddle 3) needs one
pass removed first; a legacy ``model.pdmodel`` program needs nothing. Measured on paddlepaddle 3.3.1 (CPU wheel,
oneDNN 3.6.2), 2 threads, input 1×3×512×1024, argmax output, seeded random weights; median seconds per run after a
warm-up run:

TIMINGS

Why:

* ``onednn_placement_pass`` moves every op that has a oneDNN kernel into the oneDNN dialect, ``bilinear_interp``
  included. The oneDNN instruction then cannot convert that op's ``scale`` attribute and every run fails with
  ``ConvertPirAttribute2RuntimeAttribute not support [pir::ArrayAttribute<pir::DoubleAttribute>]`` (Paddle issue
  #79749). The legacy ``mkldnn_placement_pass`` has skipped interpolation since Paddle 2.5, which is why legacy
  programs run.
* Deleting just that pass keeps the oneDNN fusion passes, which build ``onednn_op.fused_conv2d`` (convolution + batch
  norm + bias + residual add + relu) directly: that is nearly all of a segmentation network's time. Pooling,
  interpolation, attention and the output op run on Paddle's own CPU kernels, as they do in the legacy program.
  Logits match the oneDNN-off run to ~3e-6 of their scale and the labels are identical, for all five networks.
* ``transfer_layout_pass`` turns the stem max-pool into NHWC between two transposes; Paddle's NHWC pool kernel is
  slow, so it is deleted as well.

What does not help: ``set_mkldnn_op``/``set_onednn_op`` (only the legacy placement pass reads the list), turning off
``switch_ir_optim`` (oneDNN placement still happens), ``set_optimization_level(0|1)`` (runs, but no op reaches oneDNN,
so it is as slow as oneDNN off), ``enable_memory_optim`` (a PIR predictor then fails: ``Not find predictor_id 0 and
pass_name memory_optimize_pass``), and ``enable_new_ir`` for a legacy program (``Type of attribute: fuse_activation
is not pir::StrAttribute``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.errors import BackendError

FORMATS = {".json": "pir", ".pdmodel": "legacy"}
# oneDNN passes that break or slow down a PIR program on CPU (see the module docstring)
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
        for name in PIR_DELETED_PASSES:
            config.delete_pass(name)
            deleted.append(name)
        note = "oneDNN fused convolutions; interpolation and pooling on Paddle's CPU kernels"
    else:
        config.enable_new_ir(False)  # translated to PIR, a legacy program's oneDNN attributes fail to load
        config.enable_mkldnn()
        note = "oneDNN with the legacy passes"
    return {"format": fmt, "mkldnn": onednn, "threads": n, "deleted_passes": deleted, "note": note}


def disable_glog_info(config: Any | None = None) -> None:
    """Silence Paddle's log: glog INFO/WARNING lines, and the pass-by-pass lines of ``config``'s predictor.

    glog reads ``GLOG_minloglevel`` once, when paddle is first imported, so this silences import-time lines only when
    called before that (and always in child processes). ``config.disable_glog_info()`` mutes glog for the rest of the
    process once its predictor is created, and the "Running PIR pass" lines of that predictor.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    if config is not None:
        config.disable_glog_info()
