"""Reading a combined Paddle ``.pdiparams`` file's tensor records without loading them (no paddle import).

Beside :mod:`zoo.formats.weights` (which reads ``.pdparams`` pickles): paddle2onnx turns a missing or truncated params file
into a model without those weights and reports success, so zoo walks the records first.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

from zoo.errors import IntegrityError


def check_params(path: Path, hint: str = "fetch the model again") -> int:
    """Walk the tensor records of a combined ``.pdiparams`` file; IntegrityError if one is cut short. Returns the count.

    Each record is: uint32 version, uint64 LoD levels (each a uint64 size and bytes), uint32 version, int32 size of a
    TensorDesc protobuf, the TensorDesc (dtype, dims), then the raw data.
    """
    size = path.stat().st_size
    if size == 0:
        raise IntegrityError(f"{path} is empty; {hint}")
    count = 0
    with open(path, "rb") as f:
        while f.tell() < size:
            offset = f.tell()
            try:
                version_, levels = struct.unpack("<IQ", _read(f, 12))
                if version_ != 0 or levels > 16:
                    raise IntegrityError(f"{path} is not a Paddle params file (bad record at byte {offset}); {hint}")
                for _ in range(levels):
                    f.seek(struct.unpack("<Q", _read(f, 8))[0], os.SEEK_CUR)
                _, desc_size = struct.unpack("<Ii", _read(f, 8))
                dtype, dims = _tensor_desc(_read(f, desc_size))
            except (EOFError, ValueError, struct.error):
                raise IntegrityError(
                    f"{path} is truncated or corrupt: tensor #{count + 1} (at byte {offset}) is incomplete; {hint}"
                ) from None
            itemsize = _DTYPE_SIZES.get(dtype)
            if itemsize is None:  # a dtype this walker does not know: stop checking rather than guess
                return count
            end = f.seek(math.prod(dims) * itemsize, os.SEEK_CUR)
            if end > size:
                raise IntegrityError(
                    f"{path} is truncated: tensor #{count + 1} needs bytes up to {end}, the file has {size}; {hint}"
                )
            count += 1
    return count


# TensorDesc data types (paddle/fluid/framework/framework.proto) → bytes per element
_DTYPE_SIZES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 19: 8, 20: 1, 21: 1, 22: 2, 23: 8, 24: 16}


def _read(f: Any, n: int) -> bytes:
    if n < 0:
        raise EOFError
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def _tensor_desc(buf: bytes) -> tuple[int, list[int]]:
    """(data type, dims) of a serialized TensorDesc: field 1 varint, field 2 repeated int64 (packed or not)."""
    dtype, dims, i = -1, [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            if field == 1:
                dtype = value
            elif field == 2:
                dims.append(value)
        elif wire == 2:
            length, i = _varint(buf, i)
            chunk, i = buf[i : i + length], i + length
            j = 0
            while field == 2 and j < len(chunk):
                value, j = _varint(chunk, j)
                dims.append(value)
        else:
            raise ValueError("unexpected protobuf wire type")
    if dtype < 0 or any(d >= 1 << 62 for d in dims):  # a negative (unknown) dim cannot be in a params file
        raise ValueError("bad TensorDesc")
    return dtype, dims
