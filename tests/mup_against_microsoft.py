"""flaxinit.mup against microsoft/mup, step for step (run by hand; needs torch and mup).

    pip install torch mup   # a separate environment: the project does not depend on torch
    python tests/mup_against_microsoft.py            # float32
    python tests/mup_against_microsoft.py --float64  # float64 in both

Each run stores its largest differences under its precision in
``benchmarks/results/mup_against_microsoft.json``, which README and docs/mup.md quote.

An MLP 16 -> w -> w -> 10 (ReLU, microsoft/mup's ``MuReadout``) at w = 128 against base
shapes at w = 32 (4x); the same start (torch's weights copied into the Flax model, which
reads out with ``flaxinit.mup.Readout``) and the same batches; 5 steps of ``MuAdam``,
``MuAdamW`` (weight decay 0.1) and ``MuSGD`` (momentum 0.9, weight decay 1e-3) against
``mup.adamw`` (``eps_scaling=False``: ``MuAdam``'s ε) and ``mup.sgd``. Prints the largest
relative difference of any parameter after each step (of the parameter's largest entry).

The stored run (torch 2.13, mup 1.0, jax 0.10.2, its machine recorded): SGD agrees to float32
rounding; Adam(W) to 1e-13 in float64 but less in float32: the update rules are the same, and
Adam's entrywise normalization turns the rounding of gradients that are near zero (a sum that
cancels) into updates of order the learning rate.
"""

import json
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from mup import MuAdam, MuAdamW, MuReadout, MuSGD, set_base_shapes

from flaxinit import mup, tooling

FLOAT64 = "--float64" in sys.argv
jax.config.update("jax_enable_x64", FLOAT64)
torch.set_default_dtype(torch.float64 if FLOAT64 else torch.float32)
DTYPE = np.float64 if FLOAT64 else np.float32
IN, OUT, BASE, WIDTH, STEPS, BATCH = 16, 10, 32, 128, 5, 8


class TorchMLP(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(IN, width), torch.nn.Linear(width, width)
        self.out = MuReadout(width, OUT)

    def forward(self, x):
        return self.out(torch.relu(self.l2(torch.relu(self.l1(x)))))


class FlaxMLP(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.width, name="l1")(x))
        x = nn.relu(nn.Dense(self.width, name="l2")(x))
        return mup.Readout(OUT, base_width=BASE, name="out")(x)


def to_flax(model):
    p = {k: v.detach().numpy() for k, v in model.named_parameters()}
    return {
        "l1": {"kernel": p["l1.weight"].T, "bias": p["l1.bias"]},
        "l2": {"kernel": p["l2.weight"].T, "bias": p["l2.bias"]},
        "out": {mup.READOUT_KERNEL: p["out.weight"].T, "bias": p["out.bias"]},
    }


def run(name, torch_opt, flax_opt):
    torch.manual_seed(0)
    model = TorchMLP(WIDTH)
    set_base_shapes(model, TorchMLP(BASE))
    params = jax.tree.map(jnp.asarray, to_flax(model))
    flax_model = FlaxMLP(WIDTH)
    shapes = mup.infshapes(jax.eval_shape(FlaxMLP(BASE).init, jax.random.key(0), jnp.ones((1, IN))), params)
    opt_t, opt_f = torch_opt(model.parameters()), flax_opt(shapes)
    state = opt_f.init(params)
    rng = np.random.default_rng(1)

    def loss_f(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(flax_model.apply({"params": p}, x), y).mean()

    worst = 0.0
    for step in range(STEPS):
        x = rng.standard_normal((BATCH, IN)).astype(DTYPE)
        y = rng.integers(0, OUT, BATCH)
        opt_t.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt_t.step()
        grads = jax.grad(loss_f)(params, jnp.asarray(x), jnp.asarray(y))
        updates, state = opt_f.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        ref = to_flax(model)
        diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))), params, ref)
        worst = max(worst, max(jax.tree.leaves(diffs)))
        print(f"{name} step {step + 1}: largest relative difference {max(jax.tree.leaves(diffs)):.2e}")
    return worst


if __name__ == "__main__":
    results = {
        "MuAdam": run("MuAdam", lambda p: MuAdam(p, lr=1e-2), lambda s: mup.adamw(1e-2, shapes=s, eps_scaling=False)),
        "MuAdamW": run("MuAdamW", lambda p: MuAdamW(p, lr=1e-2, weight_decay=0.1),
                       lambda s: mup.adamw(1e-2, shapes=s, weight_decay=0.1, eps_scaling=False)),
        "MuSGD": run("MuSGD", lambda p: MuSGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
                     lambda s: mup.sgd(0.1, shapes=s, momentum=0.9, weight_decay=1e-3)),
    }  # fmt: skip
    print(results)
    out = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "mup_against_microsoft.json"
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["float64" if FLOAT64 else "float32"] = {**results, "machine": tooling.machine()}
    tooling.write_json(out, doc)
    sys.exit(0 if max(results.values()) < (1e-12 if FLOAT64 else 1e-4) else 1)
