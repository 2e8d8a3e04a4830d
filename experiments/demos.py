"""The article's binary-counting demos at learning rate 1.0 (SPEC section 4.1).

(a) Train on the single pair ``10011 -> 10100`` until all five outputs are on the right
side of 0.5: the number of updates applied before that first happens (``None`` if it
has not happened after ``max_updates``). (b) Train on all 32 pairs for 100 epochs: the
most pairs predicted correctly after any epoch. (c) Both for all-ones, all-zeros and
every study scheme, seed 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import flaxinit
from experiments.networks import STUDY_SCHEMES, CountingNet, half_squared_error, setup_for
from experiments.train import Dataset, train
from flaxinit.tooling import train_step

PAIR = (np.array([1, 0, 0, 1, 1], np.float32), np.array([1, 0, 1, 0, 0], np.float32))
DEMO_SCHEMES = ("ones", "zeros", *STUDY_SCHEMES)


def counting_data() -> Dataset:
    """All 32 numbers as 5 bits (most significant first), each mapped to its successor mod 32."""
    numbers = np.arange(32)

    def bits(v):
        return ((v[:, None] >> np.arange(4, -1, -1)) & 1).astype(np.float32)

    x, y = bits(numbers), bits((numbers + 1) % 32)
    return Dataset(x, y, x, y)


def single_example_steps(init: flaxinit.Initializer, seed: int = 1, lr: float = 1.0, max_updates: int = 10_000):
    """Updates applied before the pair ``10011 -> 10100`` is first predicted correctly."""
    module = CountingNet({"default": init})
    x, y = (jnp.asarray(a) for a in PAIR)
    params = module.init(jax.random.key(seed), x)["params"]

    def correct(p):
        return jnp.all((module.apply({"params": p}, x) > 0.5) == (y > 0.5))

    optimizer = optax.sgd(lr)
    step = train_step(lambda q: half_squared_error(module.apply({"params": q}, x), y), optimizer)

    @jax.jit
    def run(p):
        def cond(state):
            p, _, steps = state
            return (~correct(p)) & (steps < max_updates)

        def body(state):
            p, opt_state, steps = state
            p, opt_state, _ = step(p, opt_state)
            return p, opt_state, steps + 1

        p, _, steps = jax.lax.while_loop(cond, body, (p, optimizer.init(p), jnp.int32(0)))
        return steps, correct(p)

    steps, ok = run(params)
    return int(steps) if bool(ok) else None


def all_pairs_best_correct(
    inits: dict[str, flaxinit.Initializer], seed: int = 1, lr: float = 1.0, epochs: int = 100
) -> dict[str, int]:
    """Per scheme, the most of the 32 pairs predicted correctly after any of ``epochs``
    epochs (all schemes trained together, vectorized)."""
    arms = {name: {"default": init} for name, init in inits.items()}
    history = train(setup_for("counting", lr=lr), arms, [seed], counting_data(), epochs)
    best = 32 * np.max(np.stack(history.accuracy), axis=0)
    return {arm: round(float(b)) for (arm, _), b in zip(history.runs, best, strict=True)}


def run_demos(seed: int = 1, epochs: int = 100, max_updates: int = 10_000) -> dict[str, dict[str, int | None]]:
    """The JSON the CLI writes: ``{"single_example_steps": {...}, "all_pairs_best_correct": {...}}``."""
    inits = {name: flaxinit.get(name) for name in DEMO_SCHEMES}
    return {
        "single_example_steps": {
            name: single_example_steps(init, seed, max_updates=max_updates) for name, init in inits.items()
        },
        "all_pairs_best_correct": all_pairs_best_correct(inits, seed, epochs=epochs),
    }
