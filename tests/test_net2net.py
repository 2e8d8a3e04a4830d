"""Net2WiderNet (Chen, Goodfellow & Shlens, arXiv:1511.05641), weight selection (Xu et al.,
arXiv:2311.18823) and proxy_init, on flax.linen params and flax.nnx modules.

What is asserted, and with which tolerance:

* Function preservation. The widened network's output equals the narrow one's on random
  inputs, for a dense chain (ReLU MLP, 3 widened layers; an 11-layer chain whose names sort
  wrongly as strings) and a conv chain (two convs, a flatten, a dense head), in linen and nnx.
  The only differences are float32 rounding: the division of outgoing weights by the
  replica count (relative error <= u = 2^-24 per weight) and sums over more terms in another
  order (<= n u sum|terms| for a length-n dot product, Higham). To first order the output
  error is then at most ``L * (n_max + 1) * u * S`` with ``L`` the number of layers, ``n_max``
  the longest dot product and ``S = f_abs(|x|)`` the network run on ``|x|`` with ``|W|``,
  ``|b|`` (ReLU, which is 1-Lipschitz). The test asserts ``|y_wide - y_narrow| <= 2 L
  (n_max + 1) u S`` elementwise; observed errors are far below. Equal widths copy bitwise.
* The mapping: original units keep their index and weights; every new unit copies an
  original one; outgoing weights are divided by the replica count, so they sum to the original.
* Noise. For a linear two-layer chain ``y = (x W + b) V + c`` widened with relative noise
  ``r``, the output change is ``X Z V~`` with ``Z`` the noise added to the new units' incoming
  weights (iid ``N(0, s^2)``, ``s = r * std(W)``) and ``V~`` their outgoing rows. Exactly,
  ``E|X Z V~|_F^2 = s^2 |X|_F^2 |V~|_F^2`` and its variance is
  ``2 s^4 tr((X'X)^2) tr((V~V~')^2)`` (a Gaussian quadratic form); the test asserts the
  measured ``|dy|_F^2`` within 5 standard deviations of the mean. It also checks ``Z``: the
  original columns are untouched and the sample std of the new ones is ``s`` within 5
  standard errors (``s / sqrt(2N)``).
* Weight selection: exact values ``W[ix_(idx_0, idx_1, ...)]`` with the evenly spaced
  indices of Xu et al.'s code (a table of cases, the half-to-even rounding included); dtypes
  and ``jax.ShapeDtypeStruct`` targets; nnx in place.
* proxy_init trains (the loss falls) and the target starts from the proxy's function.
* Every bad input raises a clear error.
"""

from __future__ import annotations

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from flaxinit._net2net import net2wider, proxy_init, selection_indices, weight_selection

U = 2.0**-24  # float32 unit roundoff


def random_params(shapes: dict[str, dict[str, tuple[int, ...]]], seed: int = 0) -> dict:
    """Random float32 params (kernels N(0, 1/fan_in), biases N(0, 0.1^2)) for a {layer: {leaf: shape}} spec."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer, leaves in shapes.items():
        out[layer] = {}
        for leaf, shape in leaves.items():
            scale = 1 / np.sqrt(np.prod(shape[:-1])) if leaf == "kernel" else 0.1
            out[layer][leaf] = jnp.asarray((scale * rng.standard_normal(shape)).astype(np.float32))
    return out


def dense_shapes(widths: list[int], names: list[str] | None = None) -> dict:
    names = names or [f"Dense_{i}" for i in range(len(widths) - 1)]
    return {n: {"kernel": (a, b), "bias": (b,)} for n, a, b in zip(names, widths[:-1], widths[1:], strict=True)}


def np_forward(params: dict, order: list[str], x: np.ndarray, absolute: bool = False) -> np.ndarray:
    """A ReLU dense chain in float64 (``absolute``: |W|, |b|, |x|, the round-off scale S)."""
    h = np.abs(x) if absolute else np.asarray(x, np.float64)
    for i, name in enumerate(order):
        w, b = (np.asarray(params[name][k], np.float64) for k in ("kernel", "bias"))
        h = h @ (np.abs(w) if absolute else w) + (np.abs(b) if absolute else b)
        h = np.maximum(h, 0) if i < len(order) - 1 else h
    return h


def roundoff_bound(scale: np.ndarray, layers: int, n_max: int) -> np.ndarray:
    return 2 * layers * (n_max + 1) * U * scale


def f32_forward(params: dict, order: list[str], x: np.ndarray) -> np.ndarray:
    h = np.asarray(x, np.float32)
    for i, name in enumerate(order):
        h = h @ np.asarray(params[name]["kernel"]) + np.asarray(params[name]["bias"])
        h = np.maximum(h, 0) if i < len(order) - 1 else h
    return h


X5 = np.random.default_rng(1).standard_normal((64, 5)).astype(np.float32)


@pytest.mark.parametrize(
    "narrow,wide",
    [([5, 8, 6, 7, 3], [5, 20, 13, 7, 3]), ([5, 4, 3], [5, 4, 3]), ([5, 1, 3], [5, 9, 3])],
    ids=["mlp", "equal-widths", "one-unit"],
)
def test_dense_chain_is_function_preserving(narrow, wide):
    order = [f"Dense_{i}" for i in range(len(narrow) - 1)]
    params = random_params(dense_shapes(narrow))
    out = net2wider(params, random_params(dense_shapes(wide), seed=9), key=3)
    for name, (a, b) in zip(order, itertools.pairwise(wide), strict=True):
        assert out[name]["kernel"].shape == (a, b) and out[name]["kernel"].dtype == jnp.float32
    y_narrow, y_wide = f32_forward(params, order, X5), f32_forward(out, order, X5)
    bound = roundoff_bound(np_forward(out, order, X5, absolute=True), len(order), max(wide))
    assert np.all(np.abs(y_wide - y_narrow) <= bound)
    if narrow == wide:
        jax.tree_util.tree_map(np.testing.assert_array_equal, out, params)


def test_mapping_replicates_units_and_splits_outgoing_weights():
    params = random_params(dense_shapes([5, 8, 3]))
    out = net2wider(params, random_params(dense_shapes([5, 30, 3])), key=11)
    w0, b0, w1 = (
        np.asarray(params[n][k]) for n, k in [("Dense_0", "kernel"), ("Dense_0", "bias"), ("Dense_1", "kernel")]
    )
    v0, c0, v1 = (np.asarray(out[n][k]) for n, k in [("Dense_0", "kernel"), ("Dense_0", "bias"), ("Dense_1", "kernel")])
    np.testing.assert_array_equal(v0[:, :8], w0)  # g(j) = j for the original units
    np.testing.assert_array_equal(c0[:8], b0)
    g = [next(k for k in range(8) if np.array_equal(v0[:, j], w0[:, k])) for j in range(30)]  # each unit's original
    counts = np.bincount(g, minlength=8)
    assert set(g[8:]) <= set(range(8)) and counts.sum() == 30
    np.testing.assert_array_equal(c0, b0[g])
    np.testing.assert_allclose(v1, w1[g] / counts[g][:, None].astype(np.float32), rtol=0, atol=0)
    summed = np.zeros_like(w1, dtype=np.float64)
    np.add.at(summed, g, v1.astype(np.float64))
    np.testing.assert_allclose(summed, w1, rtol=4 * 30 * U)  # outgoing weights of the replicas sum to the original
    # same key, same mapping; another key, another one
    again = net2wider(params, random_params(dense_shapes([5, 30, 3])), key=11)
    np.testing.assert_array_equal(again["Dense_0"]["kernel"], v0)
    other = net2wider(params, random_params(dense_shapes([5, 30, 3])), key=12)
    assert not np.array_equal(other["Dense_0"]["kernel"], v0)


def test_natural_order_and_explicit_order():
    """Dense_10 sorts before Dense_2 as a string; the natural order (and the chain check) gets it right."""
    widths = [5, *range(6, 16), 3]
    params = random_params(dense_shapes(widths))
    wide = [5, *(2 * w for w in widths[1:-1]), 3]
    out = net2wider(params, jax.eval_shape(lambda: random_params(dense_shapes(wide))))
    order = [f"Dense_{i}" for i in range(11)]
    y, y_wide = f32_forward(params, order, X5), f32_forward(out, order, X5)
    assert np.all(np.abs(y_wide - y) <= roundoff_bound(np_forward(out, order, X5, absolute=True), 11, max(wide)))
    # names whose natural order is not the forward order need layers=
    named = {"b_first": params["Dense_0"], "a_second": params["Dense_1"]}
    named["a_second"] = {"kernel": named["a_second"]["kernel"][:, :4], "bias": named["a_second"]["bias"][:4]}
    target = {"b_first": {"kernel": jnp.zeros((5, 9)), "bias": jnp.zeros(9)}}
    target["a_second"] = {"kernel": jnp.zeros((9, 4)), "bias": jnp.zeros(4)}
    with pytest.raises(ValueError, match=r"'b_first' takes 5 inputs.*order used: a_second, b_first"):
        net2wider(named, target)
    out = net2wider(named, target, layers=["b_first", "a_second"])
    assert out["a_second"]["kernel"].shape == (9, 4)


class CNN(nn.Module):
    widths: tuple[int, int]

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(self.widths[0], (3, 3))(x))
        x = nn.relu(nn.Conv(self.widths[1], (3, 3), strides=2)(x))
        return nn.Dense(4)(x.reshape(x.shape[0], -1))


X_IMG = jax.random.normal(jax.random.key(5), (8, 6, 6, 2))


def test_conv_chain_with_flatten_is_function_preserving():
    narrow_shapes = {
        "Conv_0": {"kernel": (3, 3, 2, 3), "bias": (3,)},
        "Conv_1": {"kernel": (3, 3, 3, 5), "bias": (5,)},
        "Dense_0": {"kernel": (45, 4), "bias": (4,)},  # 3x3 positions x 5 channels, flattened channels-last
    }
    params = random_params(narrow_shapes)
    narrow, wide = CNN((3, 5)), CNN((7, 11))
    out = net2wider(params, jax.eval_shape(wide.init, jax.random.key(0), X_IMG), key=1)["params"]
    assert out["Dense_0"]["kernel"].shape == (99, 4) and out["Conv_1"]["kernel"].shape == (3, 3, 7, 11)
    apply = jax.jit(lambda model, p, x: model.apply({"params": p}, x), static_argnums=0)
    y, y_wide = apply(narrow, params, X_IMG), apply(wide, out, X_IMG)
    scale = apply(wide, jax.tree_util.tree_map(jnp.abs, out), jnp.abs(X_IMG))  # ReLU is the identity here: S
    assert np.all(np.abs(np.asarray(y_wide) - np.asarray(y)) <= roundoff_bound(np.asarray(scale), 3, 99))
    assert float(jnp.max(jnp.abs(y))) > 0.1  # a non-trivial function


def build_nnx(hidden: int, seed: int) -> nnx.Sequential:
    """A 5 -> hidden -> 3 ReLU MLP with random_params' weights (set on the host: nothing to compile)."""
    zeros = nnx.initializers.zeros
    rngs = nnx.Rngs(seed)
    model = nnx.Sequential(
        nnx.Linear(5, hidden, kernel_init=zeros, rngs=rngs),
        nnx.relu,
        nnx.Linear(hidden, 3, kernel_init=zeros, rngs=rngs),
    )
    values = random_params(dense_shapes([5, hidden, 3]), seed)
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, {"layers": {0: values["Dense_0"], 2: values["Dense_1"]}})
    nnx.update(model, state)
    return model


def test_nnx_modules_widen_in_place_like_the_dict_path():
    narrow, wide = build_nnx(6, 0), build_nnx(17, 1)
    before = nnx.to_pure_dict(nnx.state(narrow, nnx.Param))
    returned = net2wider(narrow, wide, key=4)  # written into `wide`, and returned as its new state
    assert isinstance(returned, nnx.State)
    jax.tree_util.tree_map(np.testing.assert_array_equal, nnx.to_pure_dict(returned),
                           nnx.to_pure_dict(nnx.state(wide, nnx.Param)))  # fmt: skip
    y, y_wide = np.asarray(narrow(X5)), np.asarray(wide(X5))
    widened = nnx.to_pure_dict(nnx.state(wide, nnx.Param))
    order = ["layers/0", "layers/2"]
    flat = {name: widened["layers"][int(name[-1])] for name in order}
    assert np.all(np.abs(y_wide - y) <= roundoff_bound(np_forward(flat, order, X5, absolute=True), 2, 17))
    # the narrow model is untouched, and the dict path with the same key gives the same weights
    jax.tree_util.tree_map(np.testing.assert_array_equal, nnx.to_pure_dict(nnx.state(narrow, nnx.Param)), before)
    via_dict = net2wider(before, widened, key=4)
    jax.tree_util.tree_map(np.testing.assert_array_equal, via_dict, widened)


def test_noise_changes_the_output_by_the_predicted_amount():
    narrow_w, wide_w, r = [40, 16, 12], [40, 48, 12], 0.05
    params = random_params(dense_shapes(narrow_w), seed=2)
    target = random_params(dense_shapes(wide_w))
    clean = net2wider(params, target, key=7)
    noisy = net2wider(params, target, key=7, noise=r)
    s = r * float(np.std(np.asarray(params["Dense_0"]["kernel"], np.float64)))
    z = np.asarray(noisy["Dense_0"]["kernel"], np.float64) - np.asarray(clean["Dense_0"]["kernel"], np.float64)
    np.testing.assert_array_equal(z[:, :16], 0.0)  # original units untouched
    for leaf in [("Dense_0", "bias"), ("Dense_1", "kernel"), ("Dense_1", "bias")]:  # only new incoming weights
        np.testing.assert_array_equal(noisy[leaf[0]][leaf[1]], clean[leaf[0]][leaf[1]])
    new = z[:, 16:].ravel()
    assert abs(np.std(new) - s) < 5 * s / np.sqrt(2 * new.size)
    assert abs(np.mean(new)) < 5 * s / np.sqrt(new.size)
    # the linear chain's output change, against its exact mean and standard deviation
    x = np.random.default_rng(3).standard_normal((200, 40))

    def linear(p):
        h = x @ np.asarray(p["Dense_0"]["kernel"], np.float64) + np.asarray(p["Dense_0"]["bias"], np.float64)
        return h @ np.asarray(p["Dense_1"]["kernel"], np.float64) + np.asarray(p["Dense_1"]["bias"], np.float64)

    dy2 = float(np.sum((linear(noisy) - linear(clean)) ** 2))
    v = np.asarray(clean["Dense_1"]["kernel"], np.float64)[16:]
    a, b = x.T @ x, v @ v.T
    mean = s**2 * np.trace(a) * np.trace(b)
    sd = s**2 * np.sqrt(2 * np.trace(a @ a) * np.trace(b @ b))
    assert abs(dy2 - mean) < 5 * sd, (dy2, mean, sd)
    # relative to the output, the change is of the order of the noise
    rel = np.sqrt(dy2 / np.sum(linear(clean) ** 2))
    assert r / 10 < rel < r


# --- weight selection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "large,small,expected",
    [
        (8, 4, [0, 2, 4, 6]),  # divides: a fixed step
        (12, 3, [0, 4, 8]),
        (10, 4, [0, 3, 6, 9]),  # round(linspace(0, 9, 4)) = [0, 3, 6, 9]
        (10, 3, [0, 4, 9]),  # linspace gives 4.5, rounded half to even
        (7, 7, list(range(7))),
        (5, 1, [0]),
        (9, 2, [0, 8]),
    ],
)
def test_selection_indices(large, small, expected):
    assert selection_indices(large, small).tolist() == expected


def test_weight_selection_values_shapes_and_dtypes():
    large = {
        "Conv_0": {
            "kernel": jnp.arange(3 * 3 * 8 * 12, dtype=jnp.float32).reshape(3, 3, 8, 12),
            "bias": jnp.arange(12.0),
        },
        "Dense_0": {"kernel": jnp.arange(120.0).reshape(12, 10), "bias": jnp.arange(10.0)},
        "Dense_1": {"kernel": jnp.ones((10, 2)), "bias": jnp.ones(2)},  # the paper's first-N: not in target
    }
    target = {
        "Conv_0": {"kernel": jax.ShapeDtypeStruct((3, 3, 4, 5), jnp.bfloat16), "bias": jnp.zeros(5)},
        "Dense_0": {"kernel": jnp.zeros((5, 3)), "bias": jnp.zeros(3)},
    }
    out = weight_selection(large, target)
    assert set(out) == {"Conv_0", "Dense_0"}
    k = np.asarray(large["Conv_0"]["kernel"])
    expected = k[np.ix_(range(3), range(3), [0, 2, 4, 6], [0, 3, 6, 8, 11])]  # 12 -> 5: round(linspace(0, 11, 5))
    assert out["Conv_0"]["kernel"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(out["Conv_0"]["kernel"], jnp.asarray(expected, jnp.bfloat16))
    np.testing.assert_array_equal(out["Conv_0"]["bias"], [0, 3, 6, 8, 11])  # same units as the kernel's columns
    dense = np.asarray(large["Dense_0"]["kernel"])[np.ix_([0, 3, 6, 8, 11], [0, 4, 9])]
    np.testing.assert_array_equal(out["Dense_0"]["kernel"], dense)  # rows follow the conv's kept channels


def test_weight_selection_nnx_in_place_and_variables_form():
    big, small = build_nnx(12, 0), build_nnx(4, 1)
    assert isinstance(weight_selection(big, small), nnx.State)  # written into `small` and returned
    state = nnx.state(small, nnx.Param)
    assert isinstance(weight_selection(big, state), nnx.State)  # an nnx.State in, a new nnx.State out
    np.testing.assert_array_equal(small.layers[0].kernel[...], big.layers[0].kernel[...][:, [0, 3, 6, 9]])
    np.testing.assert_array_equal(small.layers[2].kernel[...], big.layers[2].kernel[...][[0, 3, 6, 9], :])
    variables = {"params": nnx.to_pure_dict(nnx.state(big, nnx.Param)), "batch_stats": {"x": 1}}
    out = weight_selection(variables, {"params": nnx.to_pure_dict(nnx.state(small, nnx.Param)), "batch_stats": {}})
    assert out["batch_stats"] == {}
    np.testing.assert_array_equal(out["params"]["layers"][2]["bias"], small.layers[2].bias[...])


# --- proxy_init ---------------------------------------------------------------------------------

X_REG = jax.random.normal(jax.random.key(6), (64, 5))
Y_REG = jnp.sin(X_REG[:, :3])


def mse(out, y):
    return jnp.mean((out - y) ** 2)


def test_proxy_init_linen():
    proxy = nn.Sequential([nn.Dense(6), nn.relu, nn.Dense(3)])
    target = nn.Sequential([nn.Dense(24), nn.relu, nn.Dense(3)])
    result = proxy_init(proxy, target, itertools.repeat((X_REG, Y_REG)), mse, optax.adam(1e-2), 60, key=2)
    assert result.steps == 60 and result.losses.dtype == np.float64
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.params["layers_0"]["kernel"].shape == (5, 24)
    y_proxy = proxy.apply({"params": result.proxy_params}, X_REG)
    y_target = target.apply({"params": result.params}, X_REG)
    np.testing.assert_allclose(y_target, y_proxy, atol=1e-5)
    assert float(mse(y_target, Y_REG)) == pytest.approx(float(mse(y_proxy, Y_REG)), rel=1e-4)


def test_proxy_init_nnx_in_place():
    proxy, target = build_nnx(6, 0), build_nnx(24, 1)
    initial = np.asarray(proxy.layers[0].kernel[...])
    result = proxy_init(proxy, target, itertools.repeat((X_REG, Y_REG)), mse, optax.adam(1e-2), 40, noise=1e-3)
    assert not np.array_equal(proxy.layers[0].kernel[...], initial)  # trained in place
    assert isinstance(result.params, nnx.State) and isinstance(result.proxy_params, nnx.State)
    np.testing.assert_array_equal(result.params["layers"][0]["kernel"][...], target.layers[0].kernel[...])
    np.testing.assert_array_equal(result.proxy_params["layers"][0]["kernel"][...], proxy.layers[0].kernel[...])
    y_proxy, y_target = np.asarray(proxy(X_REG)), np.asarray(target(X_REG))
    assert 0 < np.max(np.abs(y_target - y_proxy)) < 0.05 * np.max(np.abs(y_proxy))  # noise 1e-3: close, not equal


# --- bad input ----------------------------------------------------------------------------------

P = random_params(dense_shapes([5, 8, 3]))


def with_layer(tree, name, leaves):
    return {**tree, name: leaves}


NET2WIDER_ERRORS = [
    ("narrower", P, random_params(dense_shapes([5, 6, 3])), {}, ValueError, "net2wider only widens.*weight_selection"),
    ("input", P, random_params(dense_shapes([6, 9, 3])), {}, ValueError, "must keep its input size: source 5"),
    ("output", P, random_params(dense_shapes([5, 9, 4])), {}, ValueError, "must keep its output size: source 3"),
    ("layers differ", P, random_params(dense_shapes([5, 9, 3], ["a", "b"])), {}, ValueError, "the same layers"),
    (
        "norm layer",
        with_layer(P, "LayerNorm_0", {"scale": jnp.ones(8)}),
        P,
        {},
        ValueError,
        "'LayerNorm_0/scale' that is neither a layer's 'kernel' nor its 'bias'",
    ),
    ("no layers", {}, P, {}, ValueError, "source has no layer"),
    ("layers list", P, P, {"layers": ["Dense_0"]}, ValueError, "layers must list every layer of source once"),
    ("noise", P, P, {"noise": -0.1}, ValueError, "noise must be >= 0.0"),
    ("noise type", P, P, {"noise": "x"}, TypeError, "noise must be a finite real number"),
    ("source type", [1, 2], P, {}, TypeError, "source must be a flax.linen params"),
    (
        "bias in one",
        with_layer(P, "Dense_1", {"kernel": P["Dense_1"]["kernel"]}),
        P,
        {},
        ValueError,
        "'Dense_1' has a bias in only one",
    ),
    (
        "conv size",
        {"Conv_0": {"kernel": jnp.ones((3, 3, 2, 4))}, "Conv_1": {"kernel": jnp.ones((3, 3, 4, 2))}},
        {"Conv_0": {"kernel": jnp.ones((5, 5, 2, 8))}, "Conv_1": {"kernel": jnp.ones((3, 3, 8, 2))}},
        {},
        ValueError,
        r"'Conv_0': source kernel \(3, 3, 2, 4\) and target kernel \(5, 5, 2, 8\)",
    ),
    (
        "target inputs",
        P,
        {"Dense_0": {"kernel": jnp.ones((5, 9)), "bias": jnp.ones(9)}, "Dense_1": P["Dense_1"]},
        {},
        ValueError,
        "'Dense_1' in target takes 8 inputs; widening 'Dense_0' to 9 outputs gives 9",
    ),
    ("key", P, P, {"key": 1.5}, TypeError, "key must be a PRNG key from jax.random.key"),
]


@pytest.mark.parametrize("label,source,target,kwargs,exc,match", NET2WIDER_ERRORS, ids=[e[0] for e in NET2WIDER_ERRORS])
def test_net2wider_errors(label, source, target, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        net2wider(source, target, **kwargs)


def test_weight_selection_and_index_errors():
    with pytest.raises(ValueError, match=r"'Dense_0/kernel': source shape \(5, 8\) cannot be cut to target shape"):
        weight_selection(P, random_params(dense_shapes([5, 9, 3])))
    with pytest.raises(ValueError, match="cannot be cut"):
        weight_selection(P, {"Dense_0": {"kernel": jnp.ones((5, 8, 1))}})
    with pytest.raises(ValueError, match="target has parameters that source lacks: extra/kernel"):
        weight_selection(P, with_layer(P, "extra", {"kernel": jnp.ones((2, 2))}))
    with pytest.raises(TypeError, match=r"target must be a flax\.linen params"):
        weight_selection(P, 3.0)
    with pytest.raises(ValueError, match="cannot select 5 of 4 entries"):
        selection_indices(4, 5)
    with pytest.raises(ValueError, match="small must be an integer >= 1"):
        selection_indices(4, 0)


def test_proxy_init_errors():
    proxy = nn.Sequential([nn.Dense(2), nn.relu, nn.Dense(3)])
    target = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(3)])
    args = (mse, optax.sgd(0.1))
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        proxy_init(proxy, target, [(X_REG, Y_REG)], *args, 0)
    with pytest.raises(ValueError, match="data is empty"):
        proxy_init(proxy, target, [], *args, 5)
    with pytest.raises(ValueError, match="data ran out after 1 batches; proxy_init needs steps=3"):
        proxy_init(proxy, target, [(X_REG, Y_REG)], *args, 3)
    with pytest.raises(TypeError, match=r"both be flax\.linen modules or both flax\.nnx modules, got flax\.linen\."):
        proxy_init(proxy, build_nnx(4, 0), [(X_REG, Y_REG)], *args, 1)
    with pytest.raises(TypeError, match=r"proxy_params applies to flax\.linen"):
        proxy_init(build_nnx(2, 0), build_nnx(4, 0), [(X_REG, Y_REG)], *args, 1, proxy_params={})
