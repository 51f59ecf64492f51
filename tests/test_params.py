"""zoo.formats.params: the one reader of Paddle's .pdiparams records, against Paddle itself.

The dtype table is checked against the installed paddle's VarType enum and against numpy's item sizes; the records
are written here by hand from the format paddle.jit.save uses, and by paddle itself.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ArchiveError, IntegrityError
from zoo.formats import params as pdiparams

# paddle's VarType names for the numpy-style names zoo uses (the enum spells a few differently)
PADDLE_NAMES = {"bool": "BOOL", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
                "float32": "FP32", "float64": "FP64", "uint8": "UINT8", "int8": "INT8", "bfloat16": "BF16",
                "complex64": "COMPLEX64", "complex128": "COMPLEX128", "float8_e4m3fn": "FP8_E4M3FN",
                "float8_e5m2": "FP8_E5M2", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64"}  # fmt: skip


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def record(code: int, dims: tuple[int, ...], data: bytes) -> bytes:
    """One record as paddle writes it: version 0, no LoD, version 0, the TensorDesc size, the TensorDesc, the data."""
    packed = b"".join(_varint(d) for d in dims)
    desc = b"\x08" + _varint(code) + b"\x12" + _varint(len(packed)) + packed
    return struct.pack("<IQ", 0, 0) + struct.pack("<Ii", 0, len(desc)) + desc + data


def test_dtype_codes_are_paddle_s():
    core = pytest.importorskip("paddle.base.core")
    var_type = core.VarDesc.VarType
    for code, (name, size) in pdiparams.DTYPES.items():
        if name == "size_t":  # Paddle 2.x's SIZE_T: gone from Paddle 3's enum, so no code of paddle's may reuse 19
            assert 19 not in {int(getattr(var_type, n)) for n in dir(var_type) if n.isupper()}
            continue
        assert int(getattr(var_type, PADDLE_NAMES[name])) == code, name
        if not name.startswith(("bfloat16", "float8")):  # numpy has no such dtypes
            assert np.dtype(name).itemsize == size, name


def test_both_checks_read_a_code_19_record_alike(tmp_path: Path):
    """The two readers this module replaced disagreed on code 19 (one skipped 8 bytes per element, one failed)."""
    path = tmp_path / "model.pdiparams"
    path.write_bytes(record(19, (2, 3), bytes(48)) + record(5, (4,), bytes(16)))
    assert pdiparams.check_params(path) == 2
    with open(path, "rb") as f:
        assert pdiparams.read_record(f, path.stat().st_size) == ("size_t", (2, 3))
        assert pdiparams.read_record(f, path.stat().st_size) == ("float32", (4,))
    path.write_bytes(record(19, (2, 3), bytes(47)))  # one byte short
    with pytest.raises(IntegrityError, match="tensor #1 .* needs bytes up to"):
        pdiparams.check_params(path)


def test_records_paddle_wrote(tmp_path: Path):
    paddle = pytest.importorskip("paddle")
    layer = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
    layer.eval()
    paddle.jit.save(layer, str(tmp_path / "model"), input_spec=[paddle.static.InputSpec([1, 3, 8, 8], "float32", "x")])
    program = next(p for p in (tmp_path / "model.json", tmp_path / "model.pdmodel") if p.is_file())
    params = tmp_path / "model.pdiparams"
    expected = sorted((p.shape, str(p.dtype).rsplit(".", 1)[-1]) for p in layer.state_dict().values())
    found = pdiparams.program_parameters(program, "hint")
    assert sorted((list(shape), dtype) for _, dtype, shape in found) == sorted((s, d) for s, d in expected)
    assert pdiparams.check_params(params) == pdiparams.check_model(program, params, "hint") == len(expected)
    data = params.read_bytes()
    params.write_bytes(data[:-5])
    with pytest.raises(ArchiveError, match="needs bytes up to"):
        pdiparams.check_model(program, params, "hint")
    with pytest.raises(IntegrityError, match="needs bytes up to"):
        pdiparams.check_params(params)
