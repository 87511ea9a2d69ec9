"""Hostile files: pickle bombs in dataset batches, tampered checkpoints, odd arrays at the ops."""
import copy
import json
import pickle

import numpy as np
import pytest

from sescratch import backend
from sescratch.cli import main
from sescratch.data.cifar import read_python_batch
from sescratch.data.unpickle import _check_plain, restricted_loads
from sescratch.errors import DataError
from sescratch.ops import avg_pool, conv, pool
from sescratch.train import TrainConfig, fit, load_checkpoint, save_checkpoint

TINY_API = dict(model="se_resnet20", model_options={"width": 2}, reduction=2, dataset="synthetic",
                subset=32, test_subset=20, epochs=1, batch_size=16, backend="numpy", progress=False)


def shared_nest(levels: int, fan_out: int):
    """A list of ``fan_out`` references to one list of ... ``levels`` deep: tiny when pickled."""
    node = list(range(fan_out))
    for _ in range(levels):
        node = [node] * fan_out
    return node


@pytest.mark.parametrize("levels, fan_out", [(19, 40), (19, 2), (12, 1000)])
def test_shared_reference_bombs_cost_their_objects_not_their_paths(tmp_path, levels, fan_out):
    # item 2: 40**19 paths through 1.6 kB; the walk visits each object once. Checked by its
    # budget of references, not by a time (this machine's speed changes): the whole nest of
    # levels * fan_out references passes a budget of exactly that, where a walk along the paths
    # would need fan_out ** levels
    raw = pickle.dumps({b"data": shared_nest(levels, fan_out), b"labels": shared_nest(levels, fan_out)},
                       protocol=4)
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    with pytest.raises(DataError, match="data_batch_1"):
        read_python_batch(path, b"labels", 10)
    nest = shared_nest(levels - 1, fan_out)
    _check_plain(nest, budget=levels * fan_out)  # levels - 1 lists of fan_out references + fan_out ints
    with pytest.raises(DataError, match="more references than a file of this size"):
        _check_plain(nest, budget=levels * fan_out - 1)
    restricted_loads(pickle.dumps(nest, protocol=4), "x")  # plain data


def test_deep_nesting_and_the_node_budget_refuse():
    with pytest.raises(DataError, match="nesting deeper than 20"):
        restricted_loads(pickle.dumps(shared_nest(25, 2), protocol=4), "deep")
    with pytest.raises(DataError, match="more references than a file of this size"):
        _check_plain([list(range(100))] * 100, budget=150)


def test_reconstruct_cannot_allocate_a_huge_array():
    # _reconstruct(ndarray, (10**12,), b"b"): 10**12 bytes from a 70-byte file
    raw = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
           b"\x8a\x05" + (10**12).to_bytes(5, "little") + b"\x85C\x01b\x87R.")
    with pytest.raises(DataError, match="shape .* refused"):  # before any allocation (none of 10**12 bytes)
        restricted_loads(raw, "huge")


@pytest.mark.parametrize("labels, message", [
    ([0.0, 1.7], "must hold ints only, found float"),
    ([0, [1]], "must hold ints only, found list"),
    (np.array([0.5, 1.0]), "must be 1-D integers"),
    ("01", "must be a list of ints"),
])
def test_float_or_nested_labels_are_refused_not_truncated(tmp_path, labels, message):
    # item 9: float labels were truncated silently
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=4))
    with pytest.raises(DataError, match=f"data_batch_1: b'labels' {message}"):
        read_python_batch(path, b"labels", 10)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "run"
    fit(TrainConfig(**TINY_API, out_dir=str(out)))
    return load_checkpoint(out / "last.npz")


def tampered(ckpt, **changes):
    parts = dict(model_state=dict(ckpt.model_state), optim_state=dict(ckpt.optim_state),
                 **copy.deepcopy(dict(rng_state=ckpt.rng_state, config=ckpt.config, meta=ckpt.meta)))
    for key, change in changes.items():
        change(parts[key])
    return parts


WEIGHT = "layer0.conv1.weight"
TAMPERINGS = {
    "meta without history": (dict(meta=lambda m: m.pop("history")), "meta lacks history"),
    "meta without normalization": (dict(meta=lambda m: m.pop("normalization")), "meta lacks normalization"),
    "meta epoch a string": (dict(meta=lambda m: m.update(epoch="3")), "meta 'epoch' must be int"),
    "config lr a string": (dict(config=lambda c: c.update(lr="0.1")), "invalid configuration: .*lr="),
    "config with an unknown key": (dict(config=lambda c: c.update(colour=1)), "unknown configuration keys: colour"),
    "config init=false": (dict(config=lambda c: c.update(model_options={"init": False})), "model option init"),
    "NaN weights": (dict(model_state=lambda s: s.update({WEIGHT: s[WEIGHT] * np.nan})), "NaN or infinite"),
    "int64 weights": (dict(model_state=lambda s: s.update({WEIGHT: s[WEIGHT].astype(np.int64)})),
                      f"model/{WEIGHT} has dtype int64, expected a floating dtype"),
    "float16 weights": (dict(model_state=lambda s: s.update({WEIGHT: s[WEIGHT].astype(np.float16)})),
                        "dtype float16, expected float32 or float64"),
    "infinite momentum": (dict(optim_state=lambda s: s.update({k: v + np.inf for k, v in s.items()
                                                               if v.ndim})), "NaN or infinite"),
    "rng state not a generator": (dict(rng_state=lambda r: r.pop("bit_generator")), "not a NumPy generator"),
}


@pytest.mark.parametrize("name", TAMPERINGS)
def test_tampered_checkpoints_are_refused_naming_the_file(tmp_path, good_checkpoint, name, capsys):
    # item 8
    changes, message = TAMPERINGS[name]
    path = save_checkpoint(tmp_path / "last.npz", **tampered(good_checkpoint, **changes))
    with pytest.raises(DataError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert main(["eval", "--checkpoint", str(path), "--backend", "numpy"]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_config_that_is_not_a_dict_is_refused(tmp_path, good_checkpoint):
    path = save_checkpoint(tmp_path / "c.npz", **tampered(good_checkpoint))
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["config"] = np.array(json.dumps([1, 2]))
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="entry 'config' must be a JSON object, got list"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"garbage", pickle.dumps({"a": 1}), b"PK\x03\x04broken"])
def test_non_npz_checkpoints_never_suggest_allow_pickle(tmp_path, content):
    # item 9: NumPy's advice to load with allow_pickle is never repeated
    path = tmp_path / "best.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="corrupt or not an .npz") as info:
        load_checkpoint(path)
    assert "allow_pickle" not in str(info.value) and str(path) in str(info.value)


OP_CALLS = {
    "conv2d float16": (lambda: conv.conv2d_forward(np.zeros((1, 1, 4, 4), np.float16),
                                                   np.zeros((1, 1, 3, 3), np.float16)),
                       "conv2d_forward: argument 'x' must have a floating dtype .*float16"),
    "conv2d empty batch": (lambda: conv.conv2d_forward(np.zeros((0, 2, 4, 4), np.float32),
                                                       np.zeros((2, 2, 3, 3), np.float32)),
                           r"conv2d_forward: argument 'x' is empty \(shape \(0, 2, 4, 4\)\)"),
    "conv2d absurd padding": (lambda: conv.conv2d_forward(np.zeros((1, 1, 4, 4), np.float32),
                                                          np.zeros((1, 1, 3, 3), np.float32), padding=10**6),
                              "conv2d_forward: argument 'padding' .* makes the padded input"),
    "max_pool2d float16": (lambda: pool.max_pool2d_forward(np.zeros((1, 1, 4, 4), np.float16), 2),
                           "max_pool2d_forward: argument 'x' must have a floating dtype"),
    "max_pool2d empty batch": (lambda: pool.max_pool2d_forward(np.zeros((0, 1, 4, 4), np.float32), 2),
                               "max_pool2d_forward: argument 'x' is empty"),
    "avg_pool2d empty batch": (lambda: avg_pool.avg_pool2d_forward(np.zeros((0, 1, 4, 4), np.float32), 2),
                               "avg_pool2d_forward: argument 'x' is empty"),
}


@pytest.mark.parametrize("family", ["numpy", "numba"])
@pytest.mark.parametrize("name", OP_CALLS)
def test_ops_refuse_odd_arrays_with_a_sentence(family, name):
    # item 9: the Numba kernels gave raw errors; absurd padding a raw MemoryError
    call, message = OP_CALLS[name]
    with backend.use(family), pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("changes, what", [
    (dict(model_state=lambda s: s.update({WEIGHT: np.zeros((3, 3), np.float32)})), "shape mismatches"),
    (dict(model_state=lambda s: s.pop(WEIGHT)), "missing keys"),
    (dict(optim_state=lambda s: s.update({"momentum_buffer.0": np.zeros(5, np.float32)})), "shape (5,)"),
    (dict(optim_state=lambda s: s.pop("lr")), "lr"),
])
def test_weights_that_do_not_fit_the_model_name_the_file(tmp_path, good_checkpoint, changes, what, capsys):
    out = tmp_path / "run"
    out.mkdir()
    path = save_checkpoint(out / "last.npz", **tampered(good_checkpoint, **changes))
    config = TrainConfig(**{**TINY_API, "epochs": 2}, out_dir=str(out), resume=True)
    with pytest.raises(DataError, match="does not fit se_resnet20") as info:
        fit(config)
    assert str(path) in str(info.value) and what in str(info.value)
    if "model_state" in changes:
        assert main(["eval", "--checkpoint", str(path), "--backend", "numpy"]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "weights do not fit" in err and "Traceback" not in err
