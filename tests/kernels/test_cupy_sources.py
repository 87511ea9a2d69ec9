"""The CuPy family, checked without a GPU (CI has none): its table and its kernel strings.

``sescratch.kernels.cupy`` imports CuPy, so on a machine without it ``test_dispatch.py`` skips the
CuPy table; here its ``KERNELS`` dict is read from the source (``ast``) and held to the same rule
as the Numba table: exactly the names of ``sescratch.kernels.DECLARED``, each bound to a
function of that name defined in the family. ``benchmarks/compile_cupy_kernels.py`` goes further
(it compiles every kernel with NVRTC) where the CuPy wheel is installed.
"""
import ast
from pathlib import Path

from sescratch.kernels import DECLARED

FAMILY = Path(__file__).resolve().parents[2] / "sescratch" / "kernels" / "cupy"


def _kernels_table():
    tree = ast.parse((FAMILY / "__init__.py").read_text(encoding="utf-8"))
    imported = {}  # local name -> module file it comes from
    table = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module.startswith("sescratch.kernels.cupy."):
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module.rsplit(".", 1)[1]
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "KERNELS" for t in node.targets):
            table = {key.value: value.id for key, value in zip(node.value.keys, node.value.values)}
    return table, imported


def _defined_functions(module):
    tree = ast.parse((FAMILY / f"{module}.py").read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_cupy_table_has_exactly_the_declared_kernels():
    table, _ = _kernels_table()
    assert table is not None, "sescratch/kernels/cupy/__init__.py has no KERNELS = {...}"
    assert sorted(table) == sorted(DECLARED)


def test_every_cupy_entry_is_a_function_of_its_name_in_the_family():
    table, imported = _kernels_table()
    for name, value in table.items():
        assert value == name, f"KERNELS[{name!r}] is {value}"
        assert value in imported, f"{value} is not imported from a sescratch.kernels.cupy module"
        assert value in _defined_functions(imported[value]), f"{imported[value]}.py defines no {value}()"


def test_every_cupy_kernel_has_a_unique_sescratch_name():
    """Each ElementwiseKernel/ReductionKernel call has a literal, unique ``sescratch_`` name."""
    names = []
    for path in sorted(FAMILY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                    "ElementwiseKernel", "ReductionKernel", "RawKernel"):
                assert node.func.attr != "RawKernel", f"{path.name}: a RawKernel (CuPy checks no types)"
                strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                names.append((path.name, strings[-1]))  # the kernel's name comes last
    assert names, "no CuPy kernels found"
    for module, name in names:
        assert name.startswith("sescratch_"), (module, name)
    assert len({n for _, n in names}) == len(names), names
