"""SGD against torch.optim.SGD step for step; schedules against their formulas and PyTorch."""
import math

import numpy as np
import pytest

from sescratch.train import SGD, Cosine, LinearWarmup, MultiStep, Step, make_schedule


class P:
    """A stand-in Parameter: .data and .grad."""

    def __init__(self, data):
        self.data = np.array(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)


def shapes():
    return [(4, 3, 3, 3), (4,), (5, 4), (5,)]


@pytest.mark.parametrize("momentum, nesterov, weight_decay, dampening, no_decay", [
    (0.0, False, 0.0, 0.0, False),
    (0.9, False, 0.0, 0.0, False),
    (0.9, True, 5e-4, 0.0, False),
    (0.9, False, 1e-2, 0.1, False),
    (0.8, True, 1e-2, 0.0, True),
])
def test_sgd_matches_torch(momentum, nesterov, weight_decay, dampening, no_decay):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s) for s in shapes()]
    ours = [P(a) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = SGD(ours, lr=0.1, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
              nesterov=nesterov, no_decay_bn_bias=no_decay)
    if no_decay:
        groups = [{"params": [t for t in theirs if t.ndim > 1]},
                  {"params": [t for t in theirs if t.ndim <= 1], "weight_decay": 0.0}]
    else:
        groups = theirs
    ref = torch.optim.SGD(groups, lr=0.1, momentum=momentum, dampening=dampening,
                          weight_decay=weight_decay, nesterov=nesterov)
    for step in range(6):
        lr = 0.1 * 0.7 ** step
        opt.lr = lr
        for g in ref.param_groups:
            g["lr"] = lr
        grads = [rng.standard_normal(s) for s in shapes()]
        for p, t, g in zip(ours, theirs, grads):
            p.grad[...] = g
            t.grad = torch.tensor(g)
        opt.step()
        ref.step()
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_no_decay_excludes_exactly_the_1d_parameters():
    ps = [P(np.ones(s)) for s in shapes()]
    opt = SGD(ps, lr=1.0, weight_decay=0.5, no_decay_bn_bias=True)
    opt.step()  # zero gradients: only the decay moves parameters
    assert [float(p.data.flat[0]) for p in ps] == [0.5, 1.0, 0.5, 1.0]


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s) for s in shapes()]
    grads = [[rng.standard_normal(s) for s in shapes()] for _ in range(4)]

    def run(split):
        ps = [P(a) for a in init]
        opt = SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
        for i, gs in enumerate(grads):
            if i == split:
                state = {k: v.copy() for k, v in opt.state_dict().items()}
                data = [p.data.copy() for p in ps]
                ps = [P(d) for d in data]
                opt = SGD(ps, lr=1.0)
                opt.load_state_dict(state)
            for p, g in zip(ps, gs):
                p.grad[...] = g
            opt.step()
        return [p.data for p in ps], opt

    straight, _ = run(split=-1)
    resumed, opt = run(split=2)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    assert opt.steps == 4 and opt.nesterov and opt.lr == 0.05


def test_load_state_dict_rejects_wrong_shapes():
    opt = SGD([P(np.ones((2, 2)))], lr=0.1, momentum=0.9)
    state = opt.state_dict()
    state["momentum_buffer.0"] = np.ones(3)
    with pytest.raises(ValueError, match=r"momentum_buffer.0: shape \(3,\)"):
        opt.load_state_dict(state)


def test_sgd_argument_checks():
    with pytest.raises(ValueError, match="nesterov"):
        SGD([P([1.0])], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)


def test_float32_parameters_stay_float32():
    p = P(np.ones(3))
    p.data, p.grad = p.data.astype(np.float32), np.ones(3, np.float32)
    SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-4).step()
    assert p.data.dtype == np.float32


def test_step_schedule_is_the_papers():
    s = Step(0.6, 30, 0.1)
    assert [s(e) for e in (0, 29, 29.99)] == [0.6] * 3
    assert math.isclose(s(30), 0.06) and math.isclose(s(60), 0.006) and math.isclose(s(99.5), 0.0006)
    assert make_schedule("step", 0.6, 100)(45) == s(45)


def test_multistep_and_cosine_values():
    m = MultiStep(0.1, [5, 8], 0.1)
    assert [round(m(e), 12) for e in (0, 4.9, 5, 7, 8, 9)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert make_schedule("multistep", 0.1, 100).milestones == [50, 75]
    seven = make_schedule("multistep", 0.1, 7)  # whole epochs: per-iteration and per-epoch agree
    assert seven.milestones == [3, 5] and seven(3.49) == seven(3.0) == pytest.approx(seven(2.99) / 10)
    assert make_schedule("multistep", 0.1, 1).milestones == [1, 1]
    c = Cosine(0.1, 10, min_lr=0.001)
    assert c(0) == 0.1 and math.isclose(c(10), 0.001) and math.isclose(c(5), 0.0505)
    assert math.isclose(c(2.5), 0.001 + 0.099 * (1 + math.cos(math.pi / 4)) / 2)


def test_warmup_composes_multiplicatively():
    w = LinearWarmup(Cosine(0.1, 10), warmup=2, start_factor=0.1)
    assert math.isclose(w(0), 0.01) and math.isclose(w(1), Cosine(0.1, 10)(1) * 0.55)
    assert w(2) == Cosine(0.1, 10)(2) and w(7) == Cosine(0.1, 10)(7)
    built = make_schedule("step", 0.1, 90, warmup_epochs=5)
    assert isinstance(built, LinearWarmup) and built(50) == Step(0.1)(50)
    with pytest.raises(ValueError, match="unknown schedule 'poly'"):
        make_schedule("poly", 0.1, 10)


def test_schedules_match_torch_per_epoch():
    torch = pytest.importorskip("torch")
    cases = [
        (make_schedule("step", 0.6, 100, step_size=30), lambda o: torch.optim.lr_scheduler.StepLR(o, 30, 0.1)),
        (make_schedule("multistep", 0.6, 100, milestones=[10, 20]),
         lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [10, 20], 0.1)),
        (make_schedule("cosine", 0.6, 100), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 100)),
    ]
    for ours, build in cases:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.6)
        sched = build(opt)
        for epoch in range(100):
            assert math.isclose(ours(epoch), opt.param_groups[0]["lr"], rel_tol=1e-9, abs_tol=1e-15)
            opt.step()
            sched.step()
