"""The public names of issue 4 exist, with the documented signatures; torch is never imported eagerly."""
import inspect
import subprocess
import sys

import sescratch
import sescratch.summary as summary
from sescratch import interop, models, nn

NN_NAMES = ["Module", "Parameter", "Conv2d", "BatchNorm2d", "Linear", "ReLU", "Sigmoid", "GlobalAvgPool",
            "MaxPool2d", "Sequential", "SEBlock", "BasicBlock", "Bottleneck", "ResNeXtBottleneck", "init"]


def test_nn_names():
    for name in NN_NAMES:
        assert name in nn.__all__ and hasattr(nn, name), name
    assert all(hasattr(nn, name) for name in nn.__all__)


def test_module_methods():
    for method in ["forward", "backward", "parameters", "named_parameters", "named_buffers", "named_modules",
                   "zero_grad", "train", "eval", "state_dict", "load_state_dict", "to", "astype", "__call__"]:
        assert callable(getattr(nn.Module, method)), method


def test_signatures():
    se = inspect.signature(nn.SEBlock)
    assert list(se.parameters) == ["channels", "reduction", "bias", "squeeze", "gate", "hidden"]
    assert se.parameters["reduction"].default == 16 and se.parameters["squeeze"].default == "avg"
    assert se.parameters["gate"].default == "sigmoid" and se.parameters["hidden"].default is None
    create = inspect.signature(models.create)
    assert create.parameters["num_classes"].kind is inspect.Parameter.KEYWORD_ONLY
    assert create.parameters["in_channels"].kind is inspect.Parameter.KEYWORD_ONLY
    # in_channels defaults to 3 (None in the signature: a weights file may give its own)
    assert models.create("resnet20", num_classes=2).layer0.conv1.weight.shape[1] == 3
    assert callable(models.list_models) and callable(summary.summary) and callable(summary.add_commands)
    assert callable(interop.to_torch) and callable(interop.from_torch)


def test_sescratch_summary_is_a_module_with_the_function():
    """Issue 10: ``sescratch.summary`` is only a module (no class swap, no lazy ``__getattr__``)."""
    import types

    model = models.create("resnet20", num_classes=10, init=False)
    assert type(sescratch.summary) is types.ModuleType and not callable(sescratch.summary)
    assert not hasattr(sescratch, "__getattr__")
    assert sescratch.summary.summary(model, (3, 32, 32)).params == 272_474


def test_importing_sescratch_does_not_import_torch():
    code = ("import sys, sescratch.nn, sescratch.models, sescratch.summary, sescratch.interop.torch; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
