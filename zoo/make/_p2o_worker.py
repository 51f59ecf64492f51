"""Run paddle2onnx in a child process: ``python -P _p2o_worker.py PROGRAM PARAMS OUT OPSET TMPDIR``.

paddle2onnx's C++ side prints straight to file descriptor 1, its Python side calls ``sys.exit`` on failure, and its
default optimizer (polygraphy) may ``pip install`` packages. In a child with captured pipes none of that reaches zoo's
stdout or process. Exit 0 with OUT written, or non-zero with the reason on stderr. Imports nothing from zoo, so that
``-P`` (no script folder on sys.path) keeps zoo's own modules from shadowing anything paddle imports.
"""

from __future__ import annotations

import os
import sys
import tempfile


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: _p2o_worker.py PROGRAM PARAMS OUT OPSET TMPDIR", file=sys.stderr)
        return 2
    program, params, out, opset, tmp = argv
    # set before paddle is imported: the same program format and no installs, whatever the caller's environment
    os.environ["FLAGS_enable_pir_api"] = "1"
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    os.environ["PIP_NO_INDEX"] = "1"
    os.environ["P2O_KEEP_TEMP_MODEL"] = "0"
    tempfile.tempdir = tmp  # paddle2onnx's intermediate files (legacy → PIR translation) go into zoo's scratch folder

    import paddle2onnx

    data = paddle2onnx.export(
        program,
        params,
        save_file=None,
        opset_version=int(opset),
        auto_upgrade_opset=True,
        verbose=False,
        enable_onnx_checker=True,
        enable_optimize=True,
        deploy_backend="onnxruntime",
        optimize_tool="None",  # never polygraphy: it may pip-install at run time
    )
    if not data:
        print("paddle2onnx returned an empty model", file=sys.stderr)
        return 3
    with open(out, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
