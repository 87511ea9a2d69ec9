"""Worked solutions of the exercise notebooks ``tutorials/exercises/NN_*.ipynb``, in plain NumPy.

Each function is what the learner's stub should become; ``sescratch.learn.check_<piece>`` grades
it against the library's op (never against this file). Read them after trying.
"""
from __future__ import annotations

import numpy as np

from sescratch import ops

__all__ = [
    "conv2d_naive", "conv2d_naive_backward", "im2col", "col2im", "gap_forward", "gap_backward",
    "excitation_forward", "excitation_backward", "se_block_backward", "batchnorm_backward", "se_block_cost",
    "sgd_momentum_step", "train_epoch", "class_excitations",
]


def _output_size(H, W, KH, KW, stride, padding):
    return (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1


def conv2d_naive(x, w, b, stride, padding):
    """Exercise 01: ``y[n, k, oh, ow] = b[k] + sum_{c,kh,kw} w[k, c, kh, kw] x_pad[n, c, oh S + kh, ow S + kw]``."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _output_size(H, W, KH, KW, stride, padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # N,C,H+2P,W+2P
    y = np.zeros((N, K, OH, OW))  # N,K,OH,OW
    for n in range(N):
        for k in range(K):
            for oh in range(OH):
                for ow in range(OW):
                    i, j = oh * stride, ow * stride
                    y[n, k, oh, ow] = np.sum(x_pad[n, :, i:i + KH, j:j + KW] * w[k]) + b[k]
    return y


def conv2d_naive_backward(dy, x, w, b, stride, padding):
    """Exercise 01: the same loops; each output sends its gradient back to its window and weights."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    _, _, OH, OW = dy.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # N,C,H+2P,W+2P
    dx_pad = np.zeros_like(x_pad)  # N,C,H+2P,W+2P
    dw = np.zeros_like(w)  # K,C,KH,KW
    db = dy.sum(axis=(0, 2, 3))  # K
    for n in range(N):
        for k in range(K):
            for oh in range(OH):
                for ow in range(OW):
                    i, j = oh * stride, ow * stride
                    dw[k] += dy[n, k, oh, ow] * x_pad[n, :, i:i + KH, j:j + KW]
                    dx_pad[n, :, i:i + KH, j:j + KW] += dy[n, k, oh, ow] * w[k]  # windows overlap: add
    dx = dx_pad[:, :, padding:padding + H, padding:padding + W]  # N,C,H,W
    return dx, dw, db


def im2col(x, KH, KW, stride, padding):
    """Exercise 02: (N, C, H, W) -> (N, C*KH*KW, OH*OW), one column per receptive field."""
    N, C, H, W = x.shape
    OH, OW = _output_size(H, W, KH, KW, stride, padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # N,C,H+2P,W+2P
    cols = np.empty((N, C, KH, KW, OH, OW))  # N,C,KH,KW,OH,OW
    for kh in range(KH):
        for kw in range(KW):
            cols[:, :, kh, kw] = x_pad[:, :, kh:kh + stride * OH:stride, kw:kw + stride * OW:stride]
    return cols.reshape(N, C * KH * KW, OH * OW)


def col2im(cols, x_shape, KH, KW, stride, padding):
    """Exercise 02: the adjoint of :func:`im2col`; overlapping windows add up."""
    N, C, H, W = x_shape
    OH, OW = _output_size(H, W, KH, KW, stride, padding)
    cols = cols.reshape(N, C, KH, KW, OH, OW)  # N,C,KH,KW,OH,OW
    dx_pad = np.zeros((N, C, H + 2 * padding, W + 2 * padding))  # N,C,H+2P,W+2P
    for kh in range(KH):
        for kw in range(KW):
            dx_pad[:, :, kh:kh + stride * OH:stride, kw:kw + stride * OW:stride] += cols[:, :, kh, kw]
    return dx_pad[:, :, padding:padding + H, padding:padding + W]  # N,C,H,W


def gap_forward(x):
    """Exercise 03: ``z[n, c] = mean of x[n, c] over H, W``."""
    return x.mean(axis=(2, 3))  # N,C


def gap_backward(dz, x_shape):
    """Exercise 03: each of the H*W positions gets ``dz / (H W)``."""
    N, C, H, W = x_shape
    return np.broadcast_to(dz[:, :, None, None] / (H * W), x_shape).copy()  # N,C,H,W


def excitation_forward(z, W1, b1, W2, b2):
    """Exercise 04: ``s = sigmoid(W2 relu(W1 z + b1) + b2)``."""
    h = z @ W1.T + b1  # N,C/r
    a = np.maximum(h, 0)  # N,C/r
    e = a @ W2.T + b2  # N,C
    return 1 / (1 + np.exp(-e))  # N,C


def excitation_backward(ds, z, W1, b1, W2, b2):
    """Exercise 04: the forward recomputed, then one backward line per forward line."""
    h = z @ W1.T + b1  # N,C/r
    a = np.maximum(h, 0)  # N,C/r
    e = a @ W2.T + b2  # N,C
    s = 1 / (1 + np.exp(-e))  # N,C
    de = ds * s * (1 - s)  # N,C
    dW2, db2 = de.T @ a, de.sum(axis=0)  # C,C/r and C
    da = de @ W2  # N,C/r
    dh = da * (h > 0)  # N,C/r
    dW1, db1 = dh.T @ z, dh.sum(axis=0)  # C/r,C and C/r
    dz = dh @ W1  # N,C
    return dz, dW1, db1, dW2, db2


def se_block_backward(dy, u, W1, b1, W2, b2):
    """Exercise 05: scale's backward, the excitation's, the squeeze's, and the fan-out sum."""
    N, C, H, W = u.shape
    z = u.mean(axis=(2, 3))  # N,C
    s = excitation_forward(z, W1, b1, W2, b2)  # N,C
    du_from_scale = dy * s[:, :, None, None]  # N,C,H,W      y = u * s
    ds = (dy * u).sum(axis=(2, 3))  # N,C
    dz, dW1, db1, dW2, db2 = excitation_backward(ds, z, W1, b1, W2, b2)
    du_from_squeeze = np.broadcast_to(dz[:, :, None, None] / (H * W), u.shape)  # N,C,H,W  z = GAP(u)
    du = du_from_scale + du_from_squeeze  # N,C,H,W   u fans out: add both paths
    return du, dW1, db1, dW2, db2


def batchnorm_backward(dy, x, gamma, beta, eps):
    """Exercise 06: batch norm (training mode) forward in one-line steps, then backward bottom-up."""
    AX = (0, 2, 3)
    M = x.shape[0] * x.shape[2] * x.shape[3]
    gamma4 = gamma.reshape(1, -1, 1, 1)  # 1,C,1,1
    mu = x.sum(axis=AX, keepdims=True) / M  # 1,C,1,1
    xc = x - mu  # N,C,H,W
    xc2 = xc ** 2  # N,C,H,W
    var = xc2.sum(axis=AX, keepdims=True) / M  # 1,C,1,1
    inv_std = (var + eps) ** -0.5  # 1,C,1,1
    xhat = xc * inv_std  # N,C,H,W
    # y = gamma4 * xhat + beta4
    dbeta = dy.sum(axis=AX)  # C
    dgamma = (dy * xhat).sum(axis=AX)  # C
    dxhat = dy * gamma4  # N,C,H,W
    dxc = dxhat * inv_std  # N,C,H,W   xhat = xc * inv_std (xc's 1st use)
    dinv_std = (dxhat * xc).sum(axis=AX, keepdims=True)  # 1,C,1,1
    dvar = -0.5 * (var + eps) ** -1.5 * dinv_std  # 1,C,1,1
    dxc2 = np.ones_like(xc2) / M * dvar  # N,C,H,W
    dxc += 2 * xc * dxc2  # N,C,H,W   xc2 = xc**2 (xc's 2nd use)
    dx = dxc.copy()  # N,C,H,W   xc = x - mu (x's 1st use)
    dmu = -dxc.sum(axis=AX, keepdims=True)  # 1,C,1,1
    dx += np.ones_like(x) / M * dmu  # N,C,H,W   mu = sum(x) / M (x's 2nd use)
    return dx, dgamma, dbeta


def se_block_cost(C, H, W, r, bias):
    """Exercise 07: parameters and multiply-accumulates of one SE block (paper Eq. 5 and §4)."""
    hidden = max(C // r, 1)
    params = C * hidden + hidden * C + (hidden + C if bias else 0)  # W1, W2 (and b1, b2)
    macs = C * H * W + C * hidden + hidden * C + C * H * W  # squeeze, FC1, FC2, scale
    return params, macs


def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay):
    """Exercise 08: PyTorch's SGD step (no dampening, no Nesterov)."""
    d = g + weight_decay * p  # L2 weight decay joins the gradient
    buf = d.copy() if buf is None else momentum * buf + d  # the momentum buffer: a running sum
    return p - lr * buf, buf


def train_epoch(model, optimizer, batches):
    """Exercise 08: forward, loss, zero_grad, backward, step for every batch."""
    losses = []
    for x, y in batches:
        logits = model(x)  # B,K
        loss, dlogits = ops.softmax_cross_entropy(logits, y)  # scalar and B,K
        optimizer.zero_grad()
        model.backward(dlogits)
        optimizer.step()
        losses.append(float(loss))
    return losses


def class_excitations(s, labels, num_classes):
    """Exercise 09: mean excitation per class and channel, and its spread across classes."""
    means = np.stack([s[labels == k].mean(axis=0) for k in range(num_classes)])  # K,C
    spread = float(means.std(axis=0).mean())
    return means, spread
