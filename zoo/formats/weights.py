"""Reading PaddleSeg ``.pdparams`` files without running them.

A ``.pdparams`` file is a pickle of ``{key: numpy array}`` (plus a ``StructuredToParameterName@@`` name map). An
ordinary unpickler runs whatever callable the file names, so this one resolves only the handful of numpy globals an
array needs and refuses everything else before it is called.
"""

from __future__ import annotations

import io
import math
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


# The only dtypes an array may have: plain numbers, in either byte order. No object (pointers), no structured or void
# dtypes (fields can hold objects), no subarrays, strings or datetimes: numpy trusts a dtype's state when it fills an
# array from raw bytes, so a dtype built from a pickle is the one thing that can crash the reader.
PLAIN_DTYPES = frozenset(
    f"{kind}{size}" for kind, sizes in {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8),
                                         "c": (8, 16)}.items() for size in sizes  # fmt: skip
)
MAX_DIMS = 32  # numpy's own limit is 64; no parameter has more than a handful


class _Refused(Exception):
    """A pickle asked for something a .pdparams file never holds; becomes a WeightsError naming the file."""


def _plain_dtype(spec: Any, order: str = "=") -> Any:
    """The numpy dtype of a plain numeric type code such as 'f4', '<i8'; _Refused for anything else."""
    import numpy as np

    code = spec.lstrip("<>=|") if isinstance(spec, str) else None
    if code is None or code not in PLAIN_DTYPES or order not in "<>=|" or len(order) != 1:
        raise _Refused(f"a dtype {spec!r}{'' if order in '<>=|' else f' with byte order {order!r}'}; only plain "
                       f"numeric dtypes ({', '.join(sorted(PLAIN_DTYPES))}) are allowed")  # fmt: skip
    dtype = np.dtype(code)
    return dtype.newbyteorder(order) if order in "<>" and dtype.itemsize > 1 else dtype


class _Dtype:
    """What ``numpy.dtype(code, align, copy)`` and its BUILD state build in a pickle, checked before numpy sees it."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True):
        self.dtype = _plain_dtype(code)

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment, flags)
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)):
            raise _Refused("a dtype state numpy does not write")
        _, order, subarray, names, fields, elsize, alignment = state[:7]
        if subarray is not None or names is not None or fields is not None:
            raise _Refused("a structured or subarray dtype (fields, names or a subarray)")
        if elsize != -1 or alignment != -1:  # plain dtypes record neither
            raise _Refused(f"a dtype whose state claims {elsize} bytes per element")
        self.dtype = _plain_dtype(self.dtype.str, order)


class _NdarrayClass:
    """Stands in for ``numpy.ndarray``, which a pickle may name only as the class ``_reconstruct`` rebuilds."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise _Refused("a direct numpy.ndarray(...) call")


class _Array:
    """What ``_reconstruct(ndarray, (0,), b'b')`` and its BUILD state build: checked, then made a real array."""

    def __init__(self, cls: Any, shape: Any = (0,), typecode: Any = b"b"):
        if cls is not _NdarrayClass:
            raise _Refused("_reconstruct of something other than numpy.ndarray")
        self.array: Any = None

    def __iter__(self) -> Any:  # e.g. OrderedDict(array): numpy would read the elements; here there are none yet
        raise _Refused("an array used before it was built")

    def __setstate__(self, state: Any) -> None:
        import numpy as np

        # numpy's ndarray state: (version, shape, dtype, is_fortran, raw bytes)
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise _Refused("an array state numpy does not write")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _Dtype):
            raise _Refused("an array whose dtype is not a plain numeric dtype")
        if not (isinstance(shape, tuple) and len(shape) <= MAX_DIMS
                and all(type(d) is int and 0 <= d < 1 << 40 for d in shape)):  # fmt: skip
            raise _Refused(f"an array of shape {shape!r}")
        if isinstance(raw, str):
            raw = raw.encode("latin1")  # protocol 2 writes bytes as latin1 text
        if not isinstance(raw, bytes | bytearray) or not isinstance(fortran, bool):
            raise _Refused("an array whose data is not raw bytes")
        need = math.prod(shape) * dtype.dtype.itemsize
        if len(raw) != need:
            raise _Refused(f"an array of shape {list(shape)} and dtype {dtype.dtype} ({need} bytes) holding "
                           f"{len(raw)} bytes")  # fmt: skip
        flat = np.frombuffer(raw, dtype=dtype.dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


def _scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy._core.multiarray.scalar(dtype, bytes)``: one plain number."""
    import numpy as np

    if not isinstance(dtype, _Dtype):
        raise _Refused("a scalar whose dtype is not a plain numeric dtype")
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise _Refused(f"a {dtype.dtype} scalar of {len(data) if isinstance(data, bytes) else '?'} bytes")
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _ordered_dict(*args: Any) -> dict:
    """``collections.OrderedDict()``: an empty dict (items come through SETITEMS, never as an argument)."""
    if args:
        raise _Refused("an OrderedDict built from an argument")
    return {}


def _allowed() -> dict[tuple[str, str], Any]:
    globals_ = {("numpy", "ndarray"): _NdarrayClass, ("numpy", "dtype"): _Dtype,
                ("collections", "OrderedDict"): _ordered_dict, ("_codecs", "encode"): _latin1_bytes}  # fmt: skip
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        globals_[(module, "_reconstruct")] = _Array
        globals_[(module, "scalar")] = _scalar
    return globals_


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
    """{parameter key: numpy array} from a .pdparams file, refusing anything but plain numeric arrays in a dict.

    Every array is checked (dtype from a closed list, shape, byte count) before numpy builds it."""
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
    except _Refused as exc:
        raise WeightsError(f"refusing {path}: it builds {exc}; a .pdparams file holds only plain numeric arrays "
                           "— get the weights from a source you trust") from None  # fmt: skip
    except Exception as exc:  # truncated or not a pickle at all
        raise WeightsError(f"{path} is not a readable .pdparams file ({type(exc).__name__}: {exc}); "
                           "download it again") from None  # fmt: skip
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict of arrays")
    state = {}
    for key, value in obj.items():
        if key == NAME_MAP_KEY:
            continue
        if not isinstance(key, str) or not isinstance(value, _Array) or value.array is None:
            what = "an unfinished array" if isinstance(value, _Array) else type(value).__name__
            raise WeightsError(f"{path}: entry {key!r} is {what}, not a numpy array")
        state[key] = value.array
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
