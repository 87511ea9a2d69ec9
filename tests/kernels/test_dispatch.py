"""The dispatch from the ops to the kernels: declared names, complete tables, calls that happen.

* every family's table ``KERNELS`` has exactly the names of ``sescratch.kernels.DECLARED``, and
  each name ``<op>`` has its reference function ``sescratch.ops.<op>_reference``;
* an unknown name is an error (at an op module's import, and at lookup), never a silent fallback;
* for every declared kernel, calling the public op runs that kernel under the ``"numba"`` family
  (and on CuPy), and runs no kernel at all under ``"numpy"``: counted by replacing each table
  entry with a counting wrapper; the reference functions never run a kernel, on any family.
"""
import numpy as np
import pytest

from sescratch import backend, ops
from sescratch.kernels import DECLARED
from tests.helpers import KERNEL_FAMILIES


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
def test_every_family_table_has_exactly_the_declared_kernels(family):
    table = backend.family_kernels(family)
    assert sorted(table) == sorted(DECLARED)
    assert len(set(DECLARED)) == len(DECLARED)
    for name, kernel in table.items():
        assert callable(kernel), name


def test_every_declared_kernel_has_a_reference_function_of_its_name():
    for name in DECLARED:
        assert callable(getattr(ops, f"{name}_reference")), name
        assert f"{name}_reference" in ops.__all__, name


def test_an_unknown_kernel_name_is_an_error():
    with pytest.raises(ValueError, match=r"declare_kernels: unknown kernel name\(s\) 'conv2d_forwrd'"):
        backend.declare_kernels("conv2d_forward", "conv2d_forwrd")
    with pytest.raises(ValueError, match="get_kernel: unknown kernel 'add_relu'"):
        backend.get_kernel("add_relu", np.zeros(1))
    table = backend.declare_kernels("relu_forward")
    with pytest.raises(ValueError, match="'relu_backward' was not declared here"):
        table.get("relu_backward", np.zeros(1))
    with pytest.raises(ValueError, match="family_kernels"):
        backend.family_kernels("numpy")


def test_get_kernel_follows_the_family():
    x = np.zeros((1, 1, 1, 1))
    with backend.use("numpy"):
        assert backend.get_kernel("se_scale_forward", x) is None
    with backend.use("numba"):
        assert backend.get_kernel("se_scale_forward", x) is backend.family_kernels("numba")["se_scale_forward"]


class Draw:
    """Standard normal float64 arrays on one device (NumPy or CuPy)."""

    def __init__(self, xp):
        self.xp, self.rng = xp, np.random.default_rng(0)

    def __call__(self, *shape):
        return self.xp.asarray(self.rng.standard_normal(shape))


def _conv(r):
    y, cache = ops.conv2d_forward(r(2, 3, 5, 5), r(4, 3, 3, 3), r(4), padding=1)
    ops.conv2d_backward(r(*y.shape), cache)


def _depthwise(r):
    """groups == C_in with a channel multiplier of 2: the depthwise kernels, not im2col."""
    y, cache = ops.conv2d_forward(r(2, 3, 5, 5), r(6, 1, 3, 3), r(6), stride=2, padding=1, groups=3)
    ops.conv2d_backward(r(*y.shape), cache)


def _batchnorm(r, training):
    mean, var = r.xp.zeros(3), r.xp.ones(3)
    y, cache = ops.batchnorm2d_forward(r(2, 3, 4, 4), r(3), r(3), mean, var,
                                       training=training)
    ops.batchnorm2d_backward(r(*y.shape), cache)


def _batchnorm_relu(r, training, residual):
    mean, var = r.xp.zeros(3), r.xp.ones(3)
    y, cache = ops.batchnorm2d_relu_forward(r(2, 3, 4, 4), r(3), r(3), mean, var, training=training,
                                            residual=r(2, 3, 4, 4) if residual else None)
    ops.batchnorm2d_relu_backward(r(*y.shape), cache)


def _bn_se_add_relu(r):
    mean, var = r.xp.zeros(4), r.xp.ones(4)
    y, cache = ops.bn_se_add_relu_forward(r(2, 4, 3, 3), r(4), r(4), mean, var, r(2, 4), r(2), r(4, 2), r(4),
                                          r(2, 4, 3, 3), training=True)
    ops.bn_se_add_relu_backward(r(*y.shape), cache)


def _relu(r):
    y, cache = ops.relu_forward(r(2, 3, 4, 4))
    ops.relu_backward(r(*y.shape), cache)


def _linear(r):
    y, cache = ops.linear_forward(r(5, 4), r(3, 4), r(3))
    ops.linear_backward(r(*y.shape), cache)


def _add_relu(r):
    y, cache = ops.add_relu_forward(r(2, 3, 4, 4), r(2, 3, 4, 4))
    ops.add_relu_backward(r(*y.shape), cache)


def _add_into(r):
    ops.add_into(r(2, 3, 4, 4), r(2, 3, 4, 4))


def _max_pool(r):
    y, cache = ops.max_pool2d_forward(r(2, 3, 5, 5), 3, stride=2, padding=1)
    ops.max_pool2d_backward(r(*y.shape), cache)


def _avg_pool(r):
    y, cache = ops.avg_pool2d_forward(r(2, 3, 5, 5), 3, stride=2, padding=1, ceil_mode=True)
    ops.avg_pool2d_backward(r(*y.shape), cache)


def _squeeze(r):
    z, cache = ops.global_avg_pool_forward(r(2, 3, 4, 4))
    ops.global_avg_pool_backward(r(*z.shape), cache)


def _squeeze_into(r):
    z, cache = ops.global_avg_pool_forward(r(2, 3, 4, 4))
    ops.global_avg_pool_backward(r(*z.shape), cache, into=r(2, 3, 4, 4))


def _se_scale(r):
    y, cache = ops.se_scale_forward(r(2, 3, 4, 4), r(2, 3))
    ops.se_scale_backward(r(*y.shape), cache)


def _sgd(r):
    p, b = r(3, 4), r.xp.zeros((3, 4))
    ops.sgd_update(p, r(3, 4), b, lr=0.1, momentum=0.9, weight_decay=1e-4, first=True)


# kernel name -> a use of the public ops that must run it
USES = {
    "conv2d_forward": _conv,
    "conv2d_backward": _conv,
    "depthwise_conv2d_forward": _depthwise,
    "depthwise_conv2d_backward": _depthwise,
    "batchnorm2d_forward": lambda r: _batchnorm(r, True),
    "batchnorm2d_backward": lambda r: _batchnorm(r, True),
    "batchnorm2d_eval_forward": lambda r: _batchnorm(r, False),
    "batchnorm2d_running_update": lambda r: _batchnorm(r, True),
    "batchnorm2d_relu_forward": lambda r: _batchnorm_relu(r, True, True),
    "batchnorm2d_relu_backward": lambda r: _batchnorm_relu(r, True, False),
    "batchnorm2d_eval_relu_forward": lambda r: _batchnorm_relu(r, False, True),
    "batchnorm2d_plane_statistics": _bn_se_add_relu,
    "plane_affine_add_relu": _bn_se_add_relu,
    "relu_plane_sums": _bn_se_add_relu,
    "batchnorm2d_scaled_backward_dx": _bn_se_add_relu,
    "linear_forward": _linear,
    "linear_backward": _linear,
    "relu_forward": _relu,
    "relu_backward": _relu,
    "add_relu_forward": _add_relu,
    "add_into": _add_into,
    "max_pool2d_forward": _max_pool,
    "max_pool2d_backward": _max_pool,
    "avg_pool2d_forward": _avg_pool,
    "avg_pool2d_backward": _avg_pool,
    "global_avg_pool_forward": _squeeze,
    "global_avg_pool_backward": _squeeze,
    "global_avg_pool_backward_into": _squeeze_into,
    "se_scale_forward": _se_scale,
    "se_scale_backward": _se_scale,
    "sgd_update": _sgd,
}


def test_every_declared_kernel_has_a_use():
    assert sorted(USES) == sorted(DECLARED)


@pytest.fixture
def counted(monkeypatch):
    """Replace every entry of the CPU and (when present) GPU tables by a counting wrapper."""
    calls = []
    families = ["numba"] + (["cupy"] if backend.cupy_available() else [])
    for family in families:
        table = backend.family_kernels(family)
        for name, kernel in list(table.items()):
            def counting(*args, _kernel=kernel, _key=(family, name)):
                calls.append(_key)
                return _kernel(*args)

            monkeypatch.setitem(table, name, counting)
    return calls


@pytest.mark.parametrize("family", [*KERNEL_FAMILIES, "numpy"])
@pytest.mark.parametrize("name", DECLARED)
def test_the_op_runs_its_kernel(counted, family, name):
    if family == "cupy":
        import cupy

        with backend.use("numpy"):  # CuPy arrays run the CuPy kernels whatever the CPU family
            USES[name](Draw(cupy))
    else:
        with backend.use(family):
            USES[name](Draw(np))
    if family == "numpy":
        assert counted == []  # the reference code ran, no kernel
    else:
        assert (family, name) in counted, counted


def _reference_calls(r):
    """Every ``*_reference`` function of the ops, called once on valid inputs."""
    x, w = r(2, 3, 5, 5), r(4, 3, 3, 3)
    y = ops.conv2d_forward_reference(x, w, r(4), (1, 1), (1, 1), 1)
    ops.conv2d_backward_reference(r(*y.shape), x, w, (1, 1), (1, 1), 1, True)
    w_dw = r(3, 1, 3, 3)
    y = ops.depthwise_conv2d_forward_reference(x, w_dw, r(3), (1, 1), (1, 1))
    ops.depthwise_conv2d_backward_reference(r(*y.shape), x, w_dw, (1, 1), (1, 1), True)
    _, mean, var = ops.batchnorm2d_forward_reference(x, r(3), r(3), 1e-5)
    ops.batchnorm2d_backward_reference(r(*x.shape), x, mean, 1 / r.xp.sqrt(var + 1e-5), r(3))
    ops.batchnorm2d_eval_forward_reference(x, r(3), r(3))
    ops.batchnorm2d_running_update_reference(r(3), r(3), mean, var, 0.1, 50)
    y, mean, var = ops.batchnorm2d_relu_forward_reference(x, r(3), r(3), 1e-5, r(*x.shape))
    ops.batchnorm2d_relu_backward_reference(r(*x.shape), y, x, mean, 1 / r.xp.sqrt(var + 1e-5), r(3), True)
    ops.batchnorm2d_eval_relu_forward_reference(x, r(3), r(3), None)
    pm, _ = ops.batchnorm2d_plane_statistics_reference(x)
    y = ops.plane_affine_add_relu_reference(x, pm, r(2, 3), r(*x.shape))
    dq, _, _ = ops.relu_plane_sums_reference(r(*x.shape), y, x, r(3))
    ops.batchnorm2d_scaled_backward_dx_reference(dq, x, r(3), r(3), pm, pm, r(3), r(3), r(3))
    ops.relu_backward_reference(r(*x.shape), ops.relu_forward_reference(x))
    ops.add_relu_forward_reference(x, r(*x.shape))
    ops.linear_backward_reference(r(5, 3), r(5, 4), r(3, 4), True)
    ops.linear_forward_reference(r(5, 4), r(3, 4), None)
    ops.add_into_reference(r(*x.shape), x)
    y, argmax = ops.max_pool2d_forward_reference(x, 3, 3, 2, 2, 1, 1)
    ops.max_pool2d_backward_reference(r(*y.shape), argmax, 5, 5)
    divisor = r.xp.full((3, 3), 9.0)
    y = ops.avg_pool2d_forward_reference(x, 3, 3, 2, 2, 1, 1, divisor)
    ops.avg_pool2d_backward_reference(r(*y.shape), divisor, 5, 5, 3, 3, 2, 2, 1, 1)
    ops.global_avg_pool_backward_reference(ops.global_avg_pool_forward_reference(x), 5, 5)
    ops.global_avg_pool_backward_into_reference(r(2, 3), r(*x.shape))
    s = r(2, 3)
    ops.se_scale_backward_reference(r(*x.shape), x, s)
    ops.se_scale_forward_reference(x, s)
    ops.sgd_update_reference(r(3, 4), r(3, 4), r(3, 4), 0.1, 0.9, 0.0, 1e-4, True, False)


@pytest.mark.parametrize("family", [*KERNEL_FAMILIES, "numpy"])
def test_the_reference_functions_never_call_a_kernel(counted, family):
    if family == "cupy":
        import cupy

        with backend.use("numpy"):
            _reference_calls(Draw(cupy))
    else:
        with backend.use(family):
            _reference_calls(Draw(np))
    assert counted == []
