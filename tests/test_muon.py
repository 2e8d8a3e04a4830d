"""mup.muon (SPEC §11): which parameters Muon updates and how, against a NumPy derivation.

The derivation is computed in float64 on both sides (jax with x64 enabled, NumPy), so the
comparison is of the algorithm, not of float32 rounding: five quintic Newton–Schulz steps of
entries bounded by ~1 lose a few units of float64's 1e-16, far below the 1e-10 asserted.
"""

import math

import jax
import numpy as np
import optax
import pytest

import mc
from experiments import verify_tolerance as vt
from flaxinit import mup
from flaxinit.mup._muon import dimension_numbers, on_muon, spectral_multiplier

#: optax.contrib.muon's defaults: the quintic's coefficients, the steps, the momentum.
COEFFS, STEPS, BETA, EPS = (3.4445, -4.775, 2.0315), 5, 0.95, 1e-8

BASE = {"embed": {"embedding": (16, 4)}, "hidden": {"kernel": (4, 16), "bias": (16,)},
        "stack": {"kernel": (3, 16, 16)}, "readout": {"kernel": (16, 5)}}  # fmt: skip
TARGET = {"embed": {"embedding": (16, 8)}, "hidden": {"kernel": (8, 64), "bias": (64,)},
          "stack": {"kernel": (3, 64, 64)}, "readout": {"kernel": (64, 5)}}  # fmt: skip


def _tree(shapes, key):
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(jax.random.key(key), len(leaves))
    return jax.tree.unflatten(
        treedef,
        [jax.random.normal(k, s) for k, s in zip(keys, leaves, strict=True)],  # float64 under enable_x64
    )


def _shapes():
    # "hidden" grows 2x in and 4x out (an einsum-like layer whose output grows as width squared)
    return mup.infshapes(_tree(BASE, 0), _tree(TARGET, 0), stacked={"stack/kernel": 1})


def _newton_schulz(g: np.ndarray) -> np.ndarray:
    """Muon's orthogonalization (Jordan et al. 2024), on the wide orientation, in float64."""
    a, b, c = COEFFS
    wide = g.shape[0] <= g.shape[1]
    x = g if wide else g.T
    x = x / (np.linalg.norm(x) + EPS)
    for _ in range(STEPS):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x if wide else x.T


def test_muon_takes_the_hidden_matrices_and_adam_the_rest():
    shapes = _shapes()
    taken = {s.path for s in jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, mup.InfShape)) if on_muon(s)}
    assert taken == {"hidden/kernel", "stack/kernel"}
    assert dimension_numbers(shapes["stack"]["kernel"]) == optax.contrib.MuonDimensionNumbers((1,), (2,))
    assert spectral_multiplier(shapes["hidden"]["kernel"]) == math.sqrt(64 / 8) * math.sqrt(4 / 2)
    assert spectral_multiplier(shapes["stack"]["kernel"]) == 1.0  # square, and its fans grow together


@pytest.mark.parametrize("steps", [2])  # two updates: the momentum and its bias correction past the first
def test_muon_matches_a_numpy_derivation(steps):
    lr = 0.05
    with jax.enable_x64(True):
        shapes, params = _shapes(), _tree(TARGET, 1)
        grads = [_tree(TARGET, 2 + t) for t in range(steps)]
        tx = mup.muon(lr, shapes=shapes)
        state = tx.init(params)
        for g in grads:
            updates, state = tx.update(g, state, params)
        adam_updates, adam_state = None, None
        adam = mup.adamw(lr, shapes=shapes)
        adam_state = adam.init(params)
        for g in grads:
            adam_updates, adam_state = adam.update(g, adam_state, params)

    for name, factor in (("hidden", math.sqrt(2.0)), ("stack", 1.0)):
        gs = [np.asarray(g[name]["kernel"]) for g in grads]
        mu = np.zeros_like(gs[0])
        for g in gs:  # optax's Nesterov momentum with bias correction
            mu = BETA * mu + (1 - BETA) * g
        t = len(gs)
        mu_hat = (BETA * mu / (1 - BETA ** (t + 1))) + ((1 - BETA) * gs[-1] / (1 - BETA**t))
        matrices = mu_hat if mu_hat.ndim == 3 else mu_hat[None]
        orthogonal = np.stack([_newton_schulz(m) for m in matrices]).reshape(mu_hat.shape)
        fan_in, fan_out = mu_hat.shape[-2], mu_hat.shape[-1]
        expected = -lr * factor * math.sqrt(max(1.0, fan_out / fan_in)) * orthogonal
        np.testing.assert_allclose(np.asarray(updates[name]["kernel"]), expected, rtol=1e-10, atol=1e-12)
    # the rest is mup.adamw's update exactly
    for path in (("embed", "embedding"), ("hidden", "bias"), ("readout", "kernel")):
        got, want = updates[path[0]][path[1]], adam_updates[path[0]][path[1]]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_shapes_without_roles_leave_every_parameter_to_adam_and_say_so():
    # a model against itself: nothing grows, no role is known, so nothing is a hidden matrix
    params, grads = _tree(BASE, 0), _tree(BASE, 1)
    shapes = mup.infshapes(params, params, stacked={"stack/kernel": 1})
    with pytest.warns(UserWarning, match="no hidden matrix"):
        tx = mup.muon(0.1, shapes=shapes)
    adam = mup.adamw(0.1, shapes=shapes)
    updates, _ = tx.update(grads, tx.init(params), params)
    expected, _ = adam.update(grads, adam.init(params), params)
    for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_muons_state_does_not_depend_on_the_width():
    # at the base width, a wider delta model tells the roles (mup.infshapes' third argument)
    at_base = mup.infshapes(_tree(BASE, 0), _tree(BASE, 0), _tree(TARGET, 0), stacked={"stack/kernel": 1})
    states = [mup.muon(0.1, shapes=s).init(_tree(t, 0)) for s, t in ((at_base, BASE), (_shapes(), TARGET))]
    assert jax.tree.structure(states[0]) == jax.tree.structure(states[1])


@pytest.mark.filterwarnings("ignore::flaxinit.mup.LayoutWarning")  # one layer: no readout, on purpose
def test_at_the_base_width_muon_is_optaxs_muon():
    # the matrices' updates; the rest is mup.adamw's (optax's Muon puts Nesterov momentum on its Adam)
    base = {"hidden": {"kernel": (16, 48), "bias": (48,)}}  # optax's labels: the 2-D kernel on Muon
    with jax.enable_x64(True):
        params = _tree(base, 0)
        shapes = mup.infshapes(params, params, _tree({"hidden": {"kernel": (32, 96), "bias": (96,)}}, 0))
        ours, theirs = mup.muon(0.05, shapes=shapes), optax.contrib.muon(0.05)
        s_ours, s_theirs = ours.init(params), theirs.init(params)
        for t in range(3):
            g = _tree(base, 10 + t)
            u_ours, s_ours = ours.update(g, s_ours, params)
            u_theirs, s_theirs = theirs.update(g, s_theirs, params)
            ours_kernel, theirs_kernel = (np.asarray(u["hidden"]["kernel"]) for u in (u_ours, u_theirs))
            np.testing.assert_allclose(ours_kernel, theirs_kernel, rtol=1e-12, atol=1e-15)


# --- the verdict (mc.verify) on Muon -----------------------------------------------------------------


#: Muon's learning rate over the reference's (Adam's): at the base width, 64, Muon's orthogonalized
#: update of an n×n matrix has entries of RMS 1/sqrt(n) = 1/8, Adam's first step entries of size 1,
#: so at 8x the reference's lr both move the hidden layers alike (the rest stays on Adam at its lr).
#: The factor is derived, not fitted: at 8x the Transformer's output row at t = 2 passes by only
#: 0.01 in slope under key 0 (its init part still shows after one step; t = 4 passes by 0.08, and
#: Adam's own reference by 0.10): far above rounding, but the row to watch if the model changes.
MUON_LR_FACTOR = 8


def _mup_muon(lr, shapes):
    return mup.muon(MUON_LR_FACTOR * lr, shapes=shapes, adam_learning_rate=lr)


@pytest.mark.slow  # a verdict under another optimizer: the reference MLP's programs compiled again
def test_mup_muon_passes_the_verdict_on_the_reference_mlp():
    verdict = vt.REFERENCES["mlp"].verify(0, optimizer=_mup_muon)
    assert verdict.ok, str(verdict)


@pytest.mark.slow  # the reference Transformer's programs compiled again
def test_optaxs_muon_fails_the_verdict_on_attention():
    # optax's Muon takes 2-D parameters only: attention's (features, heads, head_dim) kernels fall to
    # its Adam, whose learning rate nothing scales with the width
    verdict = vt.REFERENCES["transformer"].verify(0, optimizer=lambda lr, shapes: optax.contrib.muon(lr))
    assert not verdict.ok
    failing = {f.path for f in verdict.failures if f.quantity == "update"}
    assert {"block_0/attention/query@update", "block_0/attention/key@update"} <= failing


@pytest.mark.slow  # the reference Transformers' programs compiled again, linen and nnx
@pytest.mark.parametrize("name", ["transformer", "transformer-nnx"])
def test_mup_muon_passes_the_verdict_on_the_reference_transformer(name):
    reference = vt.REFERENCES[name]
    verdict = reference.verify(0, optimizer=_mup_muon)
    assert verdict.ok, str(verdict)
    # at an eighth of that learning rate (Muon at Adam's lr) the steps are too small for the output's
    # learned part to outgrow its init part at widths 64-256: the verdict fails on the output at
    # t >= 2 and says so (the same programs: the learning rate is an argument)
    slow = reference.verify(0, optimizer=_mup_muon, lr=reference.lr / MUON_LR_FACTOR)
    assert not slow.ok and {f.quantity for f in slow.failures} == {"output"}
    assert {f.cause for f in slow.failures} == {mc.Verdict.CAUSES["small_steps"]}
