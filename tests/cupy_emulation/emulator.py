"""CuPy's ElementwiseKernel and ReductionKernel, emulated on the CPU from the kernels' own source.

Each kernel's operation (an elementwise kernel) or map expression (a reduction) is pasted, as
written, into a C++ function that loops ``i`` over the elements, and compiled with g++ (cached by
the hash of the generated source). The semantics are CuPy's:

- ``i`` runs over the broadcast shape of the non-raw array arguments in C order, or over
  ``size`` when only raw arrays are given; a non-raw input is read at ``[i]`` after broadcasting,
  a non-raw output written at ``[i]``; a raw array is a flat C-order array (CuPy's ``CArray``
  indexes raw arrays by their C-order position whatever their strides);
- ``T`` is the dtype of the arrays bound to ``T`` parameters, which must agree; an array bound to
  a parameter of a fixed type must have that dtype (CuPy: "Type is mismatched");
- a Python scalar is converted to its parameter's type with NumPy 2's rule, which raises
  OverflowError for an int that does not fit (as CuPy 14 does);
- outputs left out of the call are allocated (the broadcast shape, ``T`` or their declared type);
- a reduction maps every element, then sums the mapped values over ``axis`` in float64 (the
  only reduction the kernels use is ``a + b`` with ``out = a``; others are refused).
Compiled with ``-ffp-contract=off``: no fused multiply-adds, as the GPU kernels that ask
``--fmad=false`` are compiled (the others may differ from this in the last bit on a GPU).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

C_TYPES = {"float32": ("float", np.float32), "float64": ("double", np.float64),
           "int32": ("int", np.int32), "int64": ("long long", np.int64), "bool": ("bool", np.bool_)}
CTYPES_SCALAR = {"float": ctypes.c_float, "double": ctypes.c_double, "int": ctypes.c_int32,
                 "long long": ctypes.c_int64, "bool": ctypes.c_bool}
BUILD = Path(os.environ.get("SESCRATCH_CUPY_EMULATION_BUILD",
                            Path(tempfile.gettempdir()) / f"sescratch-cupy-emulation-{os.getuid()}"))
_libraries: dict[str, ctypes.CDLL] = {}
CALLS: dict[str, int] = {}  # kernel name -> calls, for the coverage check


def parse_params(text: str) -> list[tuple[bool, str, str]]:
    """``"raw T x, int64 n"`` -> ``[(True, "T", "x"), (False, "int64", "n")]``."""
    params = []
    for item in (p.strip() for p in text.split(",")):
        if item:
            words = item.split()
            raw = words[0] == "raw"
            type_name, name = words[1:] if raw else words
            params.append((raw, type_name, name))
    return params


def _compile(source: str) -> ctypes.CDLL:
    key = hashlib.sha1(source.encode()).hexdigest()[:20]
    if key not in _libraries:
        BUILD.mkdir(parents=True, exist_ok=True)
        library = BUILD / f"{key}.so"
        if not library.exists():
            cpp = BUILD / f"{key}.cpp"
            cpp.write_text(source)
            partial = BUILD / f"{key}.{os.getpid()}.so"  # renamed when complete: parallel runs share BUILD
            subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-o", str(partial), str(cpp)],
                           check=True, capture_output=True, text=True)
            partial.replace(library)
        _libraries[key] = ctypes.CDLL(str(library))
    return _libraries[key]


def _t_dtype(kernel, params, args):
    """The dtype ``T`` stands for: that of every array bound to a ``T`` parameter."""
    dtypes = {a.dtype for (_, ty, _), a in zip(params, args) if ty == "T" and isinstance(a, np.ndarray)}
    if len(dtypes) != 1:
        raise TypeError(f"Type is mismatched ({kernel.name}: T bound to {sorted(map(str, dtypes))})")
    return dtypes.pop()


def _scalar(kernel, name, c_type, np_type, value):
    try:
        return CTYPES_SCALAR[c_type](np.array(value, dtype=np_type).item())
    except OverflowError as exc:
        raise OverflowError(f"{kernel.name}: argument {name}: {exc}") from None


def _function(kernel, params, args, shape, body, result=None):
    """Generate, compile and call ``run(n, ...)`` looping body over n elements; returns the
    arrays kept alive for the call (inputs as passed to C, in parameter order)."""
    T = _t_dtype(kernel, params, args)
    t_c = C_TYPES[str(T)][0]
    signature, raw_lines, element_lines, c_args = [], [], [], []
    for (raw, type_name, name), a in zip(params, args):
        c_type, np_type = (t_c, T) if type_name == "T" else C_TYPES[type_name]
        if not isinstance(a, np.ndarray):
            signature.append(f"{c_type} {name}")
            c_args.append(_scalar(kernel, name, c_type, np_type, a))
            continue
        if a.dtype != np.dtype(np_type):
            raise TypeError(f"Type is mismatched ({kernel.name}: {name} is {a.dtype}, declared {np_type.__name__})")
        signature.append(f"{c_type}* _{name}")
        c_args.append(a.ctypes.data_as(ctypes.c_void_p))
        if raw:
            raw_lines.append(f"{c_type}* {name} = _{name};")
        else:
            element_lines.append(f"{c_type}& {name} = _{name}[i];")
    if result is not None:
        signature.append("double* _result")
        c_args.append(result.ctypes.data_as(ctypes.c_void_p))
    source = ("#include <cmath>\n#include <cstddef>\n#include <algorithm>\nusing namespace std;\n"
              f"typedef {t_c} T;\n"
              f'extern "C" void run(ptrdiff_t _n{"".join(", " + s for s in signature)}) {{\n'
              + "\n".join(raw_lines) + "\nfor (ptrdiff_t i = 0; i < _n; ++i) {\n"
              + "\n".join(element_lines) + "\n" + body + "\n}\n}\n")
    _compile(source).run(ctypes.c_ssize_t(int(np.prod(shape))), *c_args)


def _prepared(params, args, shape):
    """Input arrays as the C function reads them: non-raw ones broadcast to the loop shape, raw
    ones contiguous (copies; outputs, written in place, are checked to be both already)."""
    out = []
    for (raw, _, name), a in zip(params, args):
        if isinstance(a, np.ndarray):
            a = np.ascontiguousarray(a if raw else np.broadcast_to(a, shape))
        out.append(a)
    return out


def elementwise(kernel, *args, size=None, **_):
    in_params, out_params, operation = kernel.definition
    ins, outs = parse_params(in_params), parse_params(out_params)
    CALLS[kernel.name] = CALLS.get(kernel.name, 0) + 1
    arrays_in = [a for (raw, _, _), a in zip(ins, args) if not raw and isinstance(a, np.ndarray)]
    if len(args) == len(ins):  # outputs left out: allocated as CuPy does
        T = _t_dtype(kernel, ins, args)
        shape = np.broadcast_shapes(*[a.shape for a in arrays_in])
        args = (*args, *(np.empty(shape, dtype=T if ty == "T" else C_TYPES[ty][1]) for _, ty, _ in outs))
    if len(args) != len(ins) + len(outs):
        raise TypeError(f"{kernel.name}: {len(args)} arguments for {len(ins) + len(outs)} parameters")
    params = ins + outs
    for (raw, _, name), a in zip(outs, args[len(ins):]):
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
            raise TypeError(f"{kernel.name}: output {name} must be a C-contiguous array")
    nonraw = [a for (raw, _, _), a in zip(params, args) if not raw and isinstance(a, np.ndarray)]
    if nonraw:
        shape = np.broadcast_shapes(*[a.shape for a in nonraw])
        for (raw, _, name), a in zip(outs, args[len(ins):]):
            if not raw and a.shape != shape:
                raise ValueError(f"{kernel.name}: output {name} has shape {a.shape}, the loop {shape}")
    elif size is None:
        raise ValueError(f"{kernel.name}: only raw arrays: the call must give size=")
    else:
        shape = (int(size),)
    _function(kernel, params, _prepared(ins, args[:len(ins)], shape) + list(args[len(ins):]), shape, operation + ";")
    outputs = args[len(ins):]
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def reduction(kernel, *args, axis=None, **_):
    in_params, out_params, map_expr, reduce_expr, post_map_expr, identity = kernel.definition
    ins, outs = parse_params(in_params), parse_params(out_params)
    CALLS[kernel.name] = CALLS.get(kernel.name, 0) + 1
    (_, out_type, out_name), = outs
    if reduce_expr.replace(" ", "") != "a+b" or re.fullmatch(rf"\s*{out_name}\s*=\s*a\s*", post_map_expr) is None \
            or identity.strip() != "0":
        raise NotImplementedError(f"{kernel.name}: only sums are emulated, got {reduce_expr!r}, {post_map_expr!r}")
    if len(args) != len(ins):
        raise TypeError(f"{kernel.name}: {len(args)} arguments for {len(ins)} inputs")
    shape = np.broadcast_shapes(*[a.shape for a in args if isinstance(a, np.ndarray)])
    mapped = np.empty(shape, dtype=np.float64)
    _function(kernel, ins, _prepared(ins, args, shape), shape, f"_result[i] = (double)({map_expr});", mapped)
    return mapped.sum(axis=axis).astype(C_TYPES[out_type][1])


def bind(fake_cupy) -> None:
    """Give every kernel the fake ``cupy`` recorded its implementation here."""
    for kernel in fake_cupy.KERNELS.values():
        kernel.run = elementwise if kernel.kind == "elementwise" else reduction
