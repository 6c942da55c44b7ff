"""Writing safetensors files one tensor at a time.

A converted 5B prior is about 20 GB in float32. safetensors' own writer needs every tensor contiguous and in
memory at once, which for transposed released weights means a second full copy. Here the header is computed
from shapes alone and each tensor is made contiguous (and cast) only while its bytes are written, so peak memory
is the source plus one tensor. The file is readable by any safetensors reader.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping

import torch

_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                torch.bool: "BOOL"}


def _stored_dtype(tensor: torch.Tensor, cast: torch.dtype | None) -> torch.dtype:
    return cast if cast is not None and tensor.is_floating_point() else tensor.dtype


def write_weights(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], cast: torch.dtype | None = None) -> None:
    """Write `tensors` (any layout, any device) as a safetensors file; floating-point ones cast to `cast` if given."""
    header: dict[str, dict] = {}
    offset = 0
    for name, tensor in tensors.items():
        dtype = _stored_dtype(tensor, cast)
        size = tensor.numel() * dtype.itemsize
        header[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for tensor in tensors.values():
            data = tensor.detach().to("cpu", _stored_dtype(tensor, cast)).contiguous()
            if data.numel():
                f.write(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
