"""Reading PaddleSeg ``.pdparams`` files without running them.

A ``.pdparams`` file is a pickle of ``{key: numpy array}`` (plus a ``StructuredToParameterName@@`` name map). An
ordinary unpickler runs whatever callable the file names, so this one resolves only the handful of numpy globals an
array needs and refuses everything else before it is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from zoo.errors import WeightsError

NAME_MAP_KEY = "StructuredToParameterName@@"
MAX_BYTES = 4 << 30


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call (as ``_codecs.encode``) to rebuild bytes; any other codec is refused."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise WeightsError(f"refusing a .pdparams file: it asks to encode with {encoding!r}; only latin1 rebuilds bytes")
    return text.encode("latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    import numpy as np
    from numpy._core import multiarray

    return {
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "scalar"): multiarray.scalar,
        ("numpy.core.multiarray", "scalar"): multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): dict,
        ("_codecs", "encode"): _latin1_bytes,
    }


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data))
        self._source = source
        self._globals = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing {self._source}: it names {module}.{name}, which could run code; a .pdparams file may "
                "hold only numpy arrays — get the weights from a source you trust"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError(f"refusing {self._source}: it uses pickle persistent ids; it is not a .pdparams file")


def read_pdparams(path: Path) -> dict[str, Any]:
    """{parameter key: numpy array} from a .pdparams file, refusing anything but arrays and plain containers."""
    import numpy as np

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise WeightsError(f"{path} is {size} bytes; larger than any PaddleSeg model ({MAX_BYTES} max)")
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights {path}: {exc.strerror or exc}") from None
    try:
        obj = _ArraysOnly(data, str(path)).load()
    except WeightsError:
        raise
    except Exception as exc:  # truncated or not a pickle at all
        raise WeightsError(f"{path} is not a readable .pdparams file ({type(exc).__name__}: {exc}); "
                           "download it again") from None  # fmt: skip
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict of arrays")
    state = {}
    for key, value in obj.items():
        if key == NAME_MAP_KEY:
            continue
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise WeightsError(f"{path}: entry {key!r} is a {type(value).__name__}, not a numpy array")
        state[key] = value
    return state


def write_pdparams(state: dict[str, Any], path: Path) -> None:
    """Write arrays the way ``paddle.save(model.state_dict())`` lays them out (a pickled dict, protocol 4)."""
    import numpy as np

    payload = {k: np.ascontiguousarray(v) for k, v in state.items()}
    payload[NAME_MAP_KEY] = {k: k for k in state}
    Path(path).write_bytes(pickle.dumps(payload, protocol=4))


def check_against(expected: dict[str, tuple[tuple[int, ...], str]], state: dict[str, Any], source: str) -> None:
    """Every expected key present with its shape and dtype; no unexpected keys. Lists every problem."""
    problems = []
    for key, (shape, dtype) in expected.items():
        if key not in state:
            problems.append(f"missing {key}")
        elif tuple(state[key].shape) != tuple(shape):
            problems.append(f"{key}: file has shape {list(state[key].shape)}, network needs {list(shape)}")
        elif str(state[key].dtype) != dtype:
            problems.append(f"{key}: file has dtype {state[key].dtype}, network needs {dtype}")
    problems += [f"unexpected {key}" for key in state if key not in expected]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise WeightsError(f"weights {source} do not fit the network: {shown}")
