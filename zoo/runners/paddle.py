"""The ``paddle`` backend: one Paddle Inference predictor over a Paddle model folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import BackendError
from zoo.runners.ort import check_device
from zoo.runners import PADDLE
from zoo.util import first_line

if TYPE_CHECKING:
    import numpy as np


class PaddleRunner:
    """One Paddle Inference predictor over a model folder (PIR ``model.json`` or legacy ``model.pdmodel``).

    On CPU, :func:`zoo.runners.paddle_config.configure` picks the fastest settings that give correct results for the program's
    format (oneDNN for both; for PIR programs with the pass removed that breaks bilinear interpolation);
    ``.mkldnn`` and ``.setup`` say what was used. ``precision="bf16"`` adds oneDNN's bfloat16 passes (PIR programs
    only, CPUs with AVX-512 BF16 or AMX; :func:`zoo.runners.paddle_config.enable_bf16` says why).
    """

    backend = "paddle"

    def __init__(self, model_dir: str | os.PathLike[str], device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32"):  # fmt: skip
        from zoo.store import cache

        check_device(device)
        self.path = Path(model_dir)
        if not self.path.is_dir():
            raise BackendError(f"{self.path}: no such Paddle model folder (model.json|model.pdmodel + model.pdiparams)")
        program = next((self.path / n for n in cache.PROGRAM_FILES if (self.path / n).is_file()), None)
        params = self.path / cache.PARAMS_FILE
        if program is None or not params.is_file():
            raise BackendError(
                f"{self.path} is not a Paddle inference model: it needs model.json or model.pdmodel, and "
                f"{cache.PARAMS_FILE}"
            )
        self.device = device
        self.precision = precision
        if precision not in PADDLE.precisions:
            raise BackendError(f"backend 'paddle' runs {', '.join(PADDLE.precisions)}, not '{precision}'; "
                               "pick another --precision or --backend")  # fmt: skip
        if precision == "bf16" and device != "cpu":
            raise BackendError("Paddle's bf16 runs on the CPU (oneDNN); use --device cpu, or --precision fp32")
        self.threads = int(threads or os.cpu_count() or 1)
        self.setup: dict[str, Any] = {}
        from paddle import inference

        config = inference.Config(str(program), str(params))
        if device == "gpu":
            import paddle

            if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
                raise BackendError(
                    "--device gpu needs a CUDA build of paddlepaddle and a visible GPU, and this machine has "
                    "neither; install paddlepaddle-gpu, or run with --device cpu"
                )
            config.enable_use_gpu(256, 0)
            self.mkldnn = False
            self.providers = ["paddle-gpu"]
        else:
            from zoo.runners import paddle_config

            self.setup = paddle_config.configure(config, program, threads=self.threads)
            if precision == "bf16":
                self.setup.update(paddle_config.enable_bf16(config, program))
            self.mkldnn = bool(self.setup["mkldnn"])
            self.providers = ["paddle-cpu-onednn" if self.mkldnn else "paddle-cpu"]
        config.switch_ir_optim(True)
        config.disable_glog_info()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as exc:
            raise BackendError(f"Paddle Inference cannot load {self.path}: {first_line(exc)}") from exc
        names = list(self.predictor.get_input_names())
        if len(names) != 1:
            raise BackendError(f"{self.path} takes {len(names)} inputs ({', '.join(names)}); zoo runs single-image models")
        self.input_name = names[0]
        self.output_names = list(self.predictor.get_output_names())
        self.program = program.name

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            handle = self.predictor.get_input_handle(self.input_name)
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(x)
            self.predictor.run()
            return self.predictor.get_output_handle(self.output_names[0]).copy_to_cpu()
        except Exception as exc:
            raise BackendError(f"Paddle Inference failed on an input of shape {list(x.shape)}: {first_line(exc)}") from exc

    def describe(self) -> dict[str, Any]:
        """What runs the model: Paddle's version, CPU/oneDNN or GPU, threads and what paddle_config chose."""
        import paddle

        options: dict[str, Any] = {"program": self.program, "onednn": bool(self.mkldnn)}
        options.update({k: v for k, v in self.setup.items() if k not in ("mkldnn", "threads")})
        return {
            "engine": "paddle-inference", "version": paddle.__version__, "device": self.device,
            "providers": list(self.providers), "threads": self.threads, "precision": self.precision,
            "mkldnn": bool(self.mkldnn), "options": options,
        }  # fmt: skip


def open_runner(model_path: Path, *, device: str = "cpu", threads: int | None = None,
                precision: str = "fp32") -> PaddleRunner:  # fmt: skip
    """The ``paddle`` backend's runner over a Paddle model folder."""
    return PaddleRunner(model_path, device, threads, precision)
