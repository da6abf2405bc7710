"""Test objectives shared by the agreement tests of every differentiator: one MLP per (activation, loss, regulariser).

Each loss gets an output activation that makes it valid (BCE needs outputs in (0, 1); cross_entropy takes
logits, a softmax output is refused by Objective) and targets it accepts.
"""
import numpy as np

import diffsuite as ds

ACT_OPTIONS = {"leaky_relu": {"slope": 0.1}, "elu": {"alpha": 0.7}, "maxout": {"k": 3}}
LOSS_SETUPS = {  # loss -> (output activation, targets(rng, batch, n_out))
    "quadratic": ("identity", lambda rng, n, k: rng.normal(size=(n, k))),
    "binary_cross_entropy": ("sigmoid", lambda rng, n, k: rng.uniform(size=(n, k))),
    "cross_entropy": ("identity", lambda rng, n, k: rng.integers(0, k, size=n)),
    "hinge": ("identity", lambda rng, n, k: rng.choice([-1.0, 1.0], size=(n, k))),
}
REGS = {"none": (0.0, 0.0), "l1": (0.01, 0.0), "l2": (0.0, 0.02), "l1+l2": (0.01, 0.02)}


def make_case(activation, loss, reg="none", *, seed=0, layers=(3, 4, 3), batch=5, output_activation=None,
              act_options=ACT_OPTIONS, round_to=None):
    """(Objective, theta): inputs ~ N(0, 1), theta = model.init(seed). ``round_to=np.float32`` rounds data and
    theta to float32 values (kept as float64), so a float64 oracle sees exactly what a float32 run sees."""
    rng = np.random.default_rng(seed)
    out_act, make_targets = LOSS_SETUPS[loss]
    act = ds.nn.get_activation(activation, **act_options.get(activation, {}))
    model = ds.MLP(layers, activation=act, output_activation=output_activation or out_act)
    x = rng.normal(size=(batch, layers[0]))
    targets = make_targets(rng, batch, layers[-1])
    theta = model.init(seed=seed)
    if round_to is not None:
        x, theta = x.astype(round_to).astype(np.float64), theta.astype(round_to).astype(np.float64)
        if loss != "cross_entropy":
            targets = targets.astype(round_to).astype(np.float64)
    l1, l2 = REGS[reg]
    return ds.Objective(model, loss, x, targets, l1=l1, l2=l2), theta
