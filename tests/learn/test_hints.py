"""The checks catch the classic mistakes, and say which one it is."""
from __future__ import annotations

import numpy as np
import pytest

from sescratch import learn, ops
from sescratch.learn import solutions as S


def fails_with(check, fn, *words):
    with pytest.raises(AssertionError) as info:
        check(fn, seed=0)
    message = str(info.value)
    for word in words:
        assert word in message, message
    return message


def test_messages_name_the_output_the_error_and_the_shapes():
    message = fails_with(learn.check_gap_forward, lambda x: x.mean(axis=(2, 3)) + 1e-3, "z is wrong",
                         "relative error", "x (")
    assert "should be below" in message


def test_a_stub_is_reported_as_not_implemented():
    def gap_forward(x):
        raise NotImplementedError
    fails_with(learn.check_gap_forward, gap_forward, "not implemented yet")


def test_a_crash_is_reported_with_the_arguments():
    fails_with(learn.check_gap_backward, lambda dz, shape: dz @ np.ones(3), "raised ValueError", "array(")


def test_a_wrong_shape_is_reported():
    fails_with(learn.check_gap_forward, lambda x: x.mean(axis=(0, 2, 3)), "has shape")


def test_flipped_kernel():
    def convolution(x, w, b, stride, padding):
        return S.conv2d_naive(x, w[:, :, ::-1, ::-1], b, stride, padding)
    fails_with(learn.check_conv2d_naive, convolution, "flipped")


def test_missing_bias():
    fails_with(learn.check_conv2d_naive, lambda x, w, b, s, p: S.conv2d_naive(x, w, 0 * b, s, p), "bias")


def _col2im_assigning(cols, x_shape, KH, KW, stride, padding):
    """solutions.col2im with ``=`` for ``+=``: overlapping windows overwrite each other."""
    N, C, H, W = x_shape
    OH, OW = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    cols = cols.reshape(N, C, KH, KW, OH, OW)
    dx = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    for kh in range(KH):
        for kw in range(KW):
            dx[:, :, kh:kh + stride * OH:stride, kw:kw + stride * OW:stride] = cols[:, :, kh, kw]
    return dx[:, :, padding:padding + H, padding:padding + W]


def test_col2im_assigning_instead_of_adding():
    with pytest.raises(AssertionError, match="ADD"):
        learn.check_col2im(_col2im_assigning, seed=0)


def test_sum_instead_of_mean():
    fails_with(learn.check_gap_forward, lambda x: x.sum(axis=(2, 3)), "SUM")


def test_missing_sigmoid():
    def no_sigmoid(z, W1, b1, W2, b2):
        return np.maximum(z @ W1.T + b1, 0) @ W2.T + b2
    fails_with(learn.check_excitation_forward, no_sigmoid, "sigmoid")


def test_forgotten_fan_out():
    def only_scale_path(dy, u, W1, b1, W2, b2):
        du, *rest = S.se_block_backward(dy, u, W1, b1, W2, b2)
        z = u.mean(axis=(2, 3))
        s = S.excitation_forward(z, W1, b1, W2, b2)
        return (dy * s[:, :, None, None], *rest)
    fails_with(learn.check_se_block_backward, only_scale_path, "fans out", "only the scale")


def test_batchnorm_without_the_variance_path():
    def no_var_path(dy, x, gamma, beta, eps):
        dx, dgamma, dbeta = S.batchnorm_backward(dy, x, gamma, beta, eps)
        M = x.shape[0] * x.shape[2] * x.shape[3]
        _, cache = ops.batchnorm2d_forward(x, gamma, beta, None, None, training=True, eps=eps)
        g = (gamma * cache.inv_std)[None, :, None, None]
        return g * (dy - dbeta[None, :, None, None] / M), dgamma, dbeta
    fails_with(learn.check_batchnorm_backward, no_var_path, "variance")


def test_learning_rate_inside_the_momentum_buffer():
    def lr_in_buffer(p, g, buf, lr, momentum, weight_decay):
        d = g + weight_decay * p
        buf = lr * d if buf is None else momentum * buf + lr * d
        return p - buf, buf
    fails_with(learn.check_sgd_momentum_step, lr_in_buffer, "learning rate went into the buffer")


def test_training_without_zero_grad():
    def no_zero_grad(model, optimizer, batches):
        losses = []
        for x, y in batches:
            loss, dlogits = ops.softmax_cross_entropy(model(x), y)
            model.backward(dlogits)
            optimizer.step()
            losses.append(float(loss))
        return losses
    fails_with(learn.check_train_epoch, no_zero_grad, "never zeroed")


def test_training_without_a_step():
    def no_step(model, optimizer, batches):
        return [float(ops.softmax_cross_entropy(model(x), y)[0]) for x, y in batches]
    fails_with(learn.check_train_epoch, no_step, "step() was never called")


def test_class_means_over_all_images():
    def overall(s, labels, K):
        means = np.broadcast_to(s.mean(axis=0), (K, s.shape[1]))
        return means, float(means.std(axis=0).mean())
    fails_with(learn.check_class_excitations, overall, "ALL images")


def test_se_cost_without_the_squeeze_and_the_scale():
    def fc_only(C, H, W, r, bias):
        params, _ = S.se_block_cost(C, H, W, r, bias)
        return params, 2 * C * max(C // r, 1)
    fails_with(learn.check_se_block_cost, fc_only, "squeeze")


def test_se_cost_with_a_fractional_hidden_width():
    def fractional(C, H, W, r, bias):
        return 2 * C * C / r + (C + C / r) * bias, S.se_block_cost(C, H, W, r, bias)[1]
    fails_with(learn.check_se_block_cost, fractional, "whole number")


def _accepted_seeds(check, fn, seeds=range(30)):
    accepted = []
    for seed in seeds:
        try:
            check(fn, seed=seed)
        except AssertionError:
            continue
        accepted.append(seed)
    return accepted


def test_no_seed_lets_a_mistake_through_for_want_of_the_case_that_shows_it(capsys):
    """Every run meets weight decay, a stride, a padding and overlapping windows."""
    def sgd_without_weight_decay(p, g, buf, lr, momentum, weight_decay):
        buf = g.copy() if buf is None else momentum * buf + g
        return p - lr * buf, buf

    def conv_ignoring_the_stride(x, w, b, stride, padding):
        OH = (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1
        OW = (x.shape[3] + 2 * padding - w.shape[3]) // stride + 1
        return S.conv2d_naive(x, w, b, 1, padding)[:, :, :OH, :OW]

    assert _accepted_seeds(learn.check_col2im, S.col2im, seeds=range(3)) == [0, 1, 2]  # the right one passes

    assert _accepted_seeds(learn.check_sgd_momentum_step, sgd_without_weight_decay) == []
    assert _accepted_seeds(learn.check_conv2d_naive, conv_ignoring_the_stride) == []
    assert _accepted_seeds(learn.check_col2im, _col2im_assigning) == []


def test_a_tuple_where_one_array_is_expected_is_said_plainly():
    fails_with(learn.check_gap_forward, lambda x: (x.mean(axis=(2, 3)), None),
               "z should be one array of shape", "got a tuple of 2 values")


def test_the_dedicated_hints_are_reached():
    fails_with(learn.check_gap_forward, lambda x: x.mean(axis=(0, 2, 3)), "axes 2 and 3")

    def sigma_prime_wrong(ds, z, W1, b1, W2, b2):
        h = z @ W1.T + b1
        a = np.maximum(h, 0)
        s = 1 / (1 + np.exp(-(a @ W2.T + b2)))
        de = ds * (1 - s)
        da = de @ W2
        dh = da * (h > 0)
        return dh @ W1, dh.T @ z, dh.sum(0), de.T @ a, de.sum(0)

    fails_with(learn.check_excitation_backward, sigma_prime_wrong, "dW2 is wrong", "s * (1 - s)")


def _conv_c_output_channels(x, w, b, stride, padding):
    """A loop over C output channels instead of K: right only where K == C."""
    K, C = w.shape[:2]
    w_c = np.resize(w, (C, *w.shape[1:]))
    return S.conv2d_naive(x, w_c, np.resize(b, C), stride, padding)


def _conv_square_kernel(x, w, b, stride, padding):
    """KH used for both kernel dimensions: right only for square kernels."""
    KH = w.shape[2]
    N, _, H, W = x.shape
    OH, OW = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - w.shape[3]) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((N, w.shape[0], OH, OW))
    for i in range(OH):
        for j in range(OW):
            patch = xp[:, :, i * stride:i * stride + KH, j * stride:j * stride + KH]  # N,C,KH,KH
            y[:, :, i, j] = np.einsum("nchw,kchw->nk", patch, w[:, :, :KH, :KH]) + b
    return y


def _im2col_kh_kw_c(x, KH, KW, stride, padding):
    """Rows ordered (kh, kw, c) instead of (c, kh, kw): right only for one channel."""
    cols = S.im2col(x, KH, KW, stride, padding)  # N,C*KH*KW,L
    N, _, L = cols.shape
    C = x.shape[1]
    return cols.reshape(N, C, KH * KW, L).transpose(0, 2, 1, 3).reshape(N, -1, L)


def _se_backward_ds_over_the_batch(dy, u, W1, b1, W2, b2):
    """ds summed over the batch as well as H, W: right only for one image."""
    N, C, H, W = u.shape
    z = u.mean(axis=(2, 3))
    s = S.excitation_forward(z, W1, b1, W2, b2)
    ds = np.broadcast_to((dy * u).sum(axis=(0, 2, 3)), (N, C))
    dz, dW1, db1, dW2, db2 = S.excitation_backward(ds, z, W1, b1, W2, b2)
    return dy * s[:, :, None, None] + dz[:, :, None, None] / (H * W), dW1, db1, dW2, db2


def test_every_run_has_a_case_where_no_dimension_hides_a_mistake():
    """Each check's first cases have N >= 2, C >= 2, K != C, H != W and (convs) KH != KW: the
    mistakes that only a degenerate draw would let through are caught on every seed."""
    def first_image_only(x, w, b, stride, padding):
        return np.repeat(S.conv2d_naive(x[:1], w, b, stride, padding), x.shape[0], axis=0)

    def dw_db_averaged(dy, x, w, b, stride, padding):
        dx, dw, db = S.conv2d_naive_backward(dy, x, w, b, stride, padding)
        return dx, dw / x.shape[0], db / x.shape[0]

    def weights_averaged(ds, z, W1, b1, W2, b2):
        dz, *grads = S.excitation_backward(ds, z, W1, b1, W2, b2)
        return (dz, *(g / z.shape[0] for g in grads))

    mistakes = [(learn.check_conv2d_naive, first_image_only), (learn.check_conv2d_naive, _conv_c_output_channels),
                (learn.check_conv2d_naive, _conv_square_kernel),
                (learn.check_conv2d_naive_backward, dw_db_averaged), (learn.check_im2col, _im2col_kh_kw_c),
                (learn.check_gap_forward, lambda x: np.broadcast_to(x.mean(axis=(0, 2, 3)), x.shape[:2])),
                (learn.check_excitation_backward, weights_averaged),
                (learn.check_se_block_backward, _se_backward_ds_over_the_batch)]
    for check, fn in mistakes:
        assert _accepted_seeds(check, fn, seeds=range(60)) == [], (check.__name__, fn.__name__)
    assert _accepted_seeds(learn.check_conv2d_naive, S.conv2d_naive, seeds=range(5)) == list(range(5))


def test_float32_and_integer_results_are_named_as_such():
    fails_with(learn.check_gap_forward, lambda x: x.astype(np.float32).mean(axis=(2, 3)),
               "z has dtype float32, expected float64", "compute in float64")
    fails_with(learn.check_conv2d_naive, lambda *a: S.conv2d_naive(*a).astype(int),
               "y has dtype int64, expected float64", "whole number")

    def float32_inside(x, w, b, stride, padding):  # float64 out, float32 work
        return S.conv2d_naive(x.astype(np.float32), w.astype(np.float32), b, stride, padding).astype(np.float64)

    for seed in range(10):
        with pytest.raises(AssertionError, match="float32's rounding, not a wrong formula"):
            learn.check_conv2d_naive(float32_inside, seed=seed)


def test_a_hint_whose_mistake_is_right_for_the_case_is_not_given():
    """With a 1x1 kernel the flipped kernel IS the kernel: a wrong y must not be blamed on a flip."""
    def off_by_a_little(x, w, b, stride, padding):
        return S.conv2d_naive(x, w, b, stride, padding) + 1e-3

    for seed in range(20):
        with pytest.raises(AssertionError) as info:
            learn.check_conv2d_naive(off_by_a_little, seed=seed)
        assert "flipped" not in str(info.value)


def test_an_argument_changed_in_place_is_reported():
    def gap_backward_dividing_dz_in_place(dz, x_shape):
        N, C, H, W = x_shape
        dz /= H * W
        return np.broadcast_to(dz[:, :, None, None], x_shape).copy()

    def sgd_in_place(p, g, buf, lr, momentum, weight_decay):
        p_new, buf_new = S.sgd_momentum_step(p, g, buf, lr, momentum, weight_decay)
        p[...] = p_new
        return p, buf_new

    fails_with(learn.check_gap_backward, gap_backward_dividing_dz_in_place,
               "changed its argument dz in place", "dz = dz / k, not dz /= k")
    fails_with(learn.check_sgd_momentum_step, sgd_in_place, "changed its argument p in place")


def test_the_squeeze_paths_mean_and_the_gates_bias_have_hints():
    def squeeze_without_the_mean(dy, u, W1, b1, W2, b2):
        du, *grads = S.se_block_backward(dy, u, W1, b1, W2, b2)
        N, C, H, W = u.shape
        z = u.mean(axis=(2, 3))
        s = S.excitation_forward(z, W1, b1, W2, b2)
        du_scale = dy * s[:, :, None, None]
        return (du_scale + (du - du_scale) * H * W, *grads)

    fails_with(learn.check_se_block_backward, squeeze_without_the_mean, "du is wrong", "lacks the mean's 1/(H*W)")
