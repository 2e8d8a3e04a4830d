"""flaxinit.mup against SPEC §10: roles and multipliers, init, optimizers, attention, readout, depth.

The expected multipliers are derived here in NumPy from the parameters' shapes and the
layouts Flax documents for its layers (which axes feed the fan-in and which the fan-out),
independently of flaxinit's code. The Table 3 / Table 8 equivalence is exact in real
arithmetic (the two forms differ only by where a factor sits), so it is checked in float64,
where 5 steps of either optimizer agree to ~1e-12 relative; float32 would only add
rounding, which Adam's entrywise normalization amplifies on near-zero gradients. The
sampling checks use 4.5 standard errors (a fixed-key test a correct implementation fails
with probability below 1e-5).
"""

import math
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from mup_models import (
    BASE,
    IN,
    OUT,
    LinenCNN,
    LinenMLP,
    LinenTransformer,
    NnxCNN,
    NnxMLP,
    NnxTransformer,
    inputs,
)

from flaxinit import mup

TARGET = 4 * BASE
Z = 4.5


def _linen_shapes(cls, width):
    return jax.eval_shape(cls(width).init, jax.random.key(0), inputs(_family(cls)))


def _nnx_shapes(cls, width):
    return jax.eval_shape(lambda: nnx.state(cls(width, nnx.Rngs(0)), nnx.Param))


def _family(cls):
    return {"MLP": "mlp", "CNN": "cnn", "Transformer": "transformer"}[
        cls.__name__.replace("Linen", "").replace("Nnx", "")
    ]


def _flat(tree):
    out = {}
    for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        keys = [k for k in keys if not (isinstance(k, jax.tree_util.GetAttrKey) and k.name == "value")]
        names = [str(getattr(k, "key", getattr(k, "name", k))) for k in keys]
        names = names[1:] if names and names[0] == "params" else names
        out["/".join(names)] = leaf
    return out


# --- the NumPy derivation -------------------------------------------------------------------------


def _layout(path, ndim):
    """(fan-in axes, fan-out axes) as Flax lays its parameters out."""
    name, parent = path.split("/")[-1], path.split("/")[-2]
    if ndim == 1 or name == "bias":
        return [], list(range(ndim))  # biases, norm scales: fan-in 1
    if parent in ("query", "key", "value"):
        return [0], [1, 2]  # (features, heads, head_dim)
    if parent == "out" and ndim == 3:
        return [0, 1], [2]  # (heads, head_dim, features)
    return list(range(ndim - 1)), [ndim - 1]  # (..., in, out), Embed (vocab, features)


def _expected(path, base, target):
    ins, outs = _layout(path, len(target))
    m_in = float(np.prod([target[a] / base[a] for a in ins]))
    m_out = float(np.prod([target[a] / base[a] for a in outs]))
    role = {(False, True): "input", (True, True): "hidden", (True, False): "output"}.get(
        (m_in != 1, m_out != 1), "finite"
    )
    adam = {"input": 1, "hidden": 1 / m_in, "output": 1 / m_in, "finite": 1}[role]
    sgd = {"input": m_out, "hidden": m_out / m_in, "output": 1 / m_in, "finite": 1}[role]
    init = 1 / math.sqrt(m_in) if role == "output" else 1.0
    if path.endswith("readout_kernel"):  # Table 8's form
        adam, sgd, init = 1.0, m_in, 1.0
    return role, m_in, m_out, adam, sgd, init


FAMILIES = [(LinenMLP, "linen"), (LinenCNN, "linen"), (LinenTransformer, "linen"),
            (NnxMLP, "nnx"), (NnxCNN, "nnx"), (NnxTransformer, "nnx")]  # fmt: skip


@pytest.mark.parametrize(("cls", "api"), FAMILIES, ids=lambda x: getattr(x, "__name__", x))
def test_every_multiplier_of_section_10_against_a_numpy_derivation(cls, api):
    shapes_of = _linen_shapes if api == "linen" else _nnx_shapes
    base, target = shapes_of(cls, BASE), shapes_of(cls, TARGET)
    shapes = mup.infshapes(base, target, tied_readout="Transformer" in cls.__name__)
    adam, sgd = _flat(mup.lr_multipliers(shapes, "adam")), _flat(mup.lr_multipliers(shapes, "sgd"))
    infs = {s.path: s for s in jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, mup.InfShape))}
    flat_base, flat_target = _flat(base), _flat(target)
    assert set(infs) == set(flat_target) == set(adam)
    roles = set()
    for path in flat_target:
        role, m_in, m_out, lr_adam, lr_sgd, _ = _expected(path, flat_base[path].shape, flat_target[path].shape)
        s = infs[path]
        assert (s.role, s.fan_in_mult, s.fan_out_mult) == (role, pytest.approx(m_in), pytest.approx(m_out)), path
        assert adam[path] == pytest.approx(lr_adam) and sgd[path] == pytest.approx(lr_sgd), path
        roles.add(role)
    assert {"input", "hidden", "output" if "Transformer" not in cls.__name__ else "input", "finite"} <= roles


def test_the_transformers_attention_and_tied_embedding_roles():
    shapes = mup.infshapes(_linen_shapes(LinenTransformer, BASE), _linen_shapes(LinenTransformer, TARGET),
                           tied_readout=True)  # fmt: skip
    attention = shapes["MultiHeadDotProductAttention_0"]
    assert attention["query"]["kernel"].role == "hidden" and attention["query"]["kernel"].fan_in_mult == 4
    assert attention["out"]["kernel"].fan_in_mult == 4 and attention["query"]["bias"].role == "input"
    assert shapes["Embed_0"]["embedding"].role == "input" and shapes["Readout_0"]["bias"].role == "finite"


@pytest.mark.parametrize(("cls", "api"), FAMILIES, ids=lambda x: getattr(x, "__name__", x))
def test_at_the_base_shapes_everything_is_the_identity(cls, api):
    if api == "linen":
        params = cls(BASE).init(jax.random.key(1), inputs(_family(cls)))
    else:
        params = nnx.state(cls(BASE, nnx.Rngs(1)), nnx.Param)
    shapes = mup.infshapes(params, params)
    assert set(jax.tree.leaves(mup.lr_multipliers(shapes, "adam"))) == {1.0}
    assert set(jax.tree.leaves(mup.lr_multipliers(shapes, "sgd"))) == {1.0}
    out = mup.rescale(params, shapes)
    assert type(out) is type(params)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params), strict=True))


def test_rescale_gives_the_stds_of_section_10_within_sampling_error():
    # the MLP at width 4 * 256 against base 256: lecun normal draws (std 1/sqrt(fan_in)) rescaled;
    # the output kernel's std is 1/sqrt(fan_in) / sqrt(m_in) = 1/sqrt(1024) / 2
    base, width = 256, 1024
    params = LinenMLP(width).init(jax.random.key(2), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, base), params)
    new = mup.rescale(params, shapes)["params"]
    for name, std in [("Dense_0", 1 / math.sqrt(IN)), ("Dense_1", 1 / math.sqrt(width)),
                      ("Dense_2", 1 / math.sqrt(width) / 2)]:  # fmt: skip
        w = np.asarray(new[name]["kernel"], np.float64)
        # lecun_normal draws a truncated normal scaled to std exactly; the SE of a mean square of
        # n draws is std^2 sqrt(Var(z^2) / n), Var(z^2) <= 2 for the truncated unit normal
        se = std**2 * math.sqrt(2 / w.size)
        assert abs(np.mean(w**2) - std**2) < Z * se, name
    fixed = mup.rescale(params, shapes, draws="fixed")["params"]
    assert np.allclose(fixed["Dense_1"]["kernel"], params["params"]["Dense_1"]["kernel"] / 2)
    assert np.allclose(fixed["Dense_2"]["kernel"], params["params"]["Dense_2"]["kernel"] / 4)
    zero = mup.rescale(params, shapes, zero_output=True)["params"]
    assert not np.any(zero["Dense_2"]["kernel"]) and np.array_equal(zero["Dense_1"]["kernel"], new["Dense_1"]["kernel"])


def test_rescale_brings_flax_default_embeddings_back_to_the_base_std():
    # SPEC §11: nn.Embed's default draws N(0, 1/features), an input weight shrinking with the
    # width; rescale (fan-in draws) multiplies it by sqrt(m_out), so its std is the base's
    # 1/sqrt(BASE) at every width (the SE of a mean square of n normal draws: std^2 sqrt(2/n));
    # declared fixed, it is left alone
    tokens = jnp.zeros((2, 5), jnp.int32)
    params = LinenTransformer(TARGET).init(jax.random.key(3), tokens)
    shapes = mup.infshapes(_linen_shapes(LinenTransformer, BASE), params, tied_readout=True)
    table = np.asarray(mup.rescale(params, shapes)["params"]["Embed_0"]["embedding"], np.float64)
    std = 1 / math.sqrt(BASE)
    assert abs(np.mean(table**2) - std**2) < Z * std**2 * math.sqrt(2 / table.size)
    kept = mup.rescale(params, shapes, draws={"*/embedding": "fixed"})["params"]["Embed_0"]["embedding"]
    assert np.array_equal(kept, params["params"]["Embed_0"]["embedding"])


class TanhMLP(nn.Module):
    """Two tanh layers and a readout: a Dense (Table 3's form) or a mup.Readout (Table 8's)."""

    width: int
    table8: bool = False

    @nn.compact
    def __call__(self, x):
        for i in range(2):
            x = nn.tanh(nn.Dense(self.width, name=f"Dense_{i}")(x))
        head = mup.Readout(OUT, base_width=BASE, name="Dense_2") if self.table8 else nn.Dense(OUT, name="Dense_2")
        return head(x)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_table_3_and_the_readout_table_8_train_the_same_function(optimizer):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(3), (16, IN), jnp.float64)
        y = jax.random.normal(jax.random.key(4), (16, OUT), jnp.float64)
        p3 = TanhMLP(TARGET).init(jax.random.key(5), x)
        s3 = mup.infshapes(jax.eval_shape(TanhMLP(BASE).init, jax.random.key(0), x), p3)
        p3 = mup.rescale(p3, s3)
        m_in = TARGET / BASE
        head = p3["params"]["Dense_2"]
        p8 = {"params": {**p3["params"], "Dense_2": {mup.READOUT_KERNEL: head["kernel"] * m_in, "bias": head["bias"]}}}
        s8 = mup.infshapes(jax.eval_shape(TanhMLP(BASE, table8=True).init, jax.random.key(0), x), p8)

        def make(shapes):
            if optimizer == "adam":
                return mup.adamw(1e-2, shapes=shapes, eps=1e-300, weight_decay=0.0)
            return mup.sgd(0.05, shapes=shapes, momentum=0.9)

        outs = []
        for model, params, shapes in ((TanhMLP(TARGET), p3, s3), (TanhMLP(TARGET, table8=True), p8, s8)):
            tx = make(shapes)
            state = tx.init(params)
            loss = lambda p, model=model: jnp.mean((model.apply(p, x) - y) ** 2)  # noqa: E731
            for _ in range(5):
                updates, state = tx.update(jax.grad(loss)(params), state, params)
                params = optax.apply_updates(params, updates)
            outs.append(np.asarray(model.apply(params, x)))
        assert np.max(np.abs(outs[0] - outs[1])) < 1e-9 * np.max(np.abs(outs[0]))
        assert np.max(np.abs(outs[0] - np.asarray(TanhMLP(TARGET).apply(p3, x)))) > 1e-3  # it trained


def _one_step(tx, params, grads):
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_weight_decay_independent_keeps_lr_times_decay_coupled_scales_it():
    params = LinenMLP(TARGET).init(jax.random.key(6), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    lr, wd = 0.1, 0.5
    for name, scaling, expected in [("independent", "independent", lambda mu: lr * wd),
                                    ("coupled", "coupled", lambda mu: lr * mu * wd)]:  # fmt: skip
        for opt, make in (("adam", mup.adamw), ("sgd", mup.sgd)):
            tx = make(lr, shapes=shapes, weight_decay=wd, weight_decay_scaling=scaling)
            updates = _flat(_one_step(tx, params, zeros))  # zero gradients: the update is the decay alone
            mu = _flat(mup.lr_multipliers(shapes, opt))
            for path, p in _flat(params).items():
                if np.any(p):
                    np.testing.assert_allclose(
                        updates[path], -expected(mu[path]) * p, rtol=1e-6, err_msg=(name, opt, path)
                    )


def test_adam_eps_of_hidden_weights_shrinks_with_their_fan_in():
    # gradients of magnitude eps: each update is lr g / (|g| + eps * mult); hidden: mult = 1/m_in
    params = LinenMLP(TARGET).init(jax.random.key(7), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params)
    eps = 1e-3
    grads = jax.tree.map(lambda p: jnp.full_like(p, eps), params)
    for scaling, hidden_mult in ((True, 1 / 4), (False, 1.0)):
        updates = _flat(_one_step(mup.adamw(1.0, shapes=shapes, eps=eps, eps_scaling=scaling), params, grads))
        lr = _flat(mup.lr_multipliers(shapes, "adam"))
        np.testing.assert_allclose(updates["Dense_1/kernel"], -lr["Dense_1/kernel"] / (1 + hidden_mult), rtol=1e-5)
        np.testing.assert_allclose(updates["Dense_0/kernel"], -lr["Dense_0/kernel"] / 2, rtol=1e-5)


def test_adam_state_has_the_parameters_structure_at_every_width():
    # the per-parameter eps are constants of the transformation, not groups of the state: at the
    # base width every eps multiplier is 1, at 4x they differ, and the state must not change shape
    structures = []
    for width in (BASE, TARGET):
        params = LinenMLP(width).init(jax.random.key(0), jnp.ones((1, IN)))
        tx = mup.adamw(1e-3, shapes=mup.infshapes(_linen_shapes(LinenMLP, BASE), params), weight_decay=0.1)
        state = tx.init(params)
        structures.append(jax.tree.structure(state))
        adam = state[0]
        assert isinstance(adam, optax.ScaleByAdamState)
        assert jax.tree.structure(adam.mu) == jax.tree.structure(params)
    assert structures[0] == structures[1]


def test_adam_with_a_per_parameter_eps_is_optaxs_adam_with_that_eps():
    # three steps of random gradients: each leaf against optax.scale_by_adam(eps=its eps) on that
    # leaf alone; the same operations in the same order, so agreement is to float32 rounding
    params = LinenMLP(TARGET).init(jax.random.key(9), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params)
    eps = 1e-2  # large enough that eps shapes the update
    tx = mup.adamw(1.0, shapes=shapes, eps=eps)
    lr, eps_mult = _flat(mup.lr_multipliers(shapes, "adam")), {"Dense_0/kernel": 1.0, "Dense_1/kernel": 1 / 4}
    keys = jax.random.split(jax.random.key(3), 3)
    grads = [jax.tree.map(lambda p, k=k: 0.01 * jax.random.normal(k, p.shape), params) for k in keys]
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(g, state, params)
    for path, u in _flat(updates).items():
        reference = optax.scale_by_adam(eps=eps * eps_mult.get(path, 1.0))
        leaf_state = reference.init(_flat(params)[path])
        for g in grads:
            expected, leaf_state = reference.update(_flat(g)[path], leaf_state)
        np.testing.assert_allclose(u, -lr[path] * expected, rtol=1e-6, atol=0, err_msg=path)


@pytest.mark.parametrize("make", [mup.adamw, mup.sgd], ids=["adamw", "sgd"])
def test_weight_decay_mask_spares_what_it_masks_out(make):
    # zero gradients: the update is the decay alone, -lr * wd * p (independent scaling), or 0 where masked out
    params = LinenMLP(TARGET).init(jax.random.key(5), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    matrices = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    for mask in (matrices, matrices(params)):
        updates = _flat(_one_step(make(0.5, shapes=shapes, weight_decay=0.1, mask=mask), params, zeros))
        for path, p in _flat(params).items():
            expected = -0.5 * 0.1 * p if p.ndim > 1 else jnp.zeros_like(p)
            np.testing.assert_allclose(updates[path], expected, rtol=1e-6, atol=0, err_msg=path)


@pytest.mark.parametrize(
    "batch,steps,expected",
    [
        (None, None, (1.0, 1.0)),
        ((64, 64), (300, 300), (1.0, 1.0)),  # the base: the identity
        ((256, 64), None, (2.0, 2.0)),  # sqrt(4); lr x decay times 4 = B / base_B: τ in epochs fixed
        ((16, 64), None, (0.5, 0.5)),
        (None, (800, 200), (1.0, 0.25)),  # τ a fixed fraction of the run: decay x base_T / T
        ((256, 64), (800, 200), (2.0, 0.5)),
    ],
)
def test_batch_length_rule_is_the_square_root_rule_and_a_fixed_timescale(batch, steps, expected):
    lr, decay = mup.batch_length_rule(batch=batch, steps=steps)
    assert (lr, decay) == expected
    if batch is not None and steps is None:  # AdamW's timescale in epochs of a fixed dataset, B / (N lr λ), kept
        assert math.isclose(batch[0] / (lr * decay), batch[1], rel_tol=1e-15)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"batch": 64}, TypeError, "batch must be \\(batch, base_batch\\)"),
        ({"steps": (10, 0)}, ValueError, "steps's base_steps must be a positive int"),
        ({"batch": (2.0, 1)}, ValueError, "batch's batch must be a positive int"),
    ],
)
def test_batch_length_rule_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        mup.batch_length_rule(**kwargs)
    with pytest.raises(error, match=match):
        mup.adamw(0.1, shapes={}, **kwargs)


def test_adamw_with_batch_and_steps_is_adamw_with_the_rules_lr_and_decay():
    """Random gradients, two steps, a float and a schedule: the rule's optimizer against
    adamw at lr x 2 and decay x 2 x 1/4 (exact factors: the same numbers, the same operations)."""
    params = LinenMLP(TARGET).init(jax.random.key(4), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params)
    keys = jax.random.split(jax.random.key(5), 2)
    grads = [jax.tree.map(lambda p, k=k: jax.random.normal(k, p.shape), params) for k in keys]
    schedule = optax.linear_schedule(0.01, 0.0, 10)
    for lr, doubled in ((0.01, 0.02), (schedule, lambda c: schedule(c) * 2.0)):
        ruled = mup.adamw(lr, shapes=shapes, weight_decay=0.4, batch=(256, 64), steps=(800, 200))
        plain = mup.adamw(doubled, shapes=shapes, weight_decay=0.2)
        states = [tx.init(params) for tx in (ruled, plain)]
        for g in grads:
            (a, states[0]), (b, states[1]) = ruled.update(g, states[0], params), plain.update(g, states[1], params)
            for path, u in _flat(a).items():
                np.testing.assert_array_equal(u, _flat(b)[path], err_msg=path)


def test_scale_by_mup_is_scale_updates_under_optaxs_name():
    assert mup.scale_by_mup is mup.scale_updates


def test_scale_updates_multiplies_each_update_by_its_lr_multiplier():
    params = LinenMLP(TARGET).init(jax.random.key(8), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params)
    grads = jax.tree.map(jnp.ones_like, params["params"])  # the inner dict: matched by path
    updates = _flat(_one_step(optax.chain(optax.sgd(1.0), mup.scale_updates(shapes, "sgd")), params["params"], grads))
    mult = _flat(mup.lr_multipliers(shapes, "sgd"))
    for path, u in updates.items():
        np.testing.assert_allclose(u, -mult[path])


def test_a_schedule_is_a_learning_rate():
    params = LinenMLP(TARGET).init(jax.random.key(9), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params)
    tx = mup.sgd(optax.linear_schedule(1.0, 0.0, 10), shapes=shapes)
    grads = jax.tree.map(jnp.ones_like, params)
    state = tx.init(params)
    first, state = tx.update(grads, state, params)
    second, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(_flat(second)["Dense_1/kernel"], 0.9 * _flat(first)["Dense_1/kernel"], rtol=1e-6)


def test_mup_attention_divides_the_logits_by_head_dim_relative_to_the_base():
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 5, 4, 32)) for i in range(3))
    out = mup.dot_product_attention(8)(q, k, v)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * mup.attention_scale(32, 8)
    expected = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert mup.attention_scale(8, 8) == pytest.approx(1 / math.sqrt(8), rel=1e-15)


def test_depth_rules_inside_residual_blocks():
    params = LinenMLP(TARGET).init(jax.random.key(10), jnp.ones((1, IN)))
    shapes = mup.infshapes(_linen_shapes(LinenMLP, BASE), params, blocks="Dense_1/*")
    plain = _flat(mup.lr_multipliers(shapes, "adam"))
    for alpha in (0.5, 1.0):
        deep = _flat(mup.lr_multipliers(shapes, "adam", depth=(16, 4, alpha)))
        for path in plain:
            factor = 4 ** (alpha - 1) if path.startswith("Dense_1/") else 1.0
            assert deep[path] == pytest.approx(plain[path] * factor), (alpha, path)
    assert mup.depth_multiplier(16, 4, 1.0) == 0.25


def test_tied_readouts_read_the_embedding_and_nnx_equals_linen():
    tokens = inputs("transformer")
    params = LinenTransformer(BASE).init(jax.random.key(11), tokens)
    assert "Readout_0" in params["params"] and set(params["params"]["Readout_0"]) == {"bias"}
    model = NnxTransformer(BASE, nnx.Rngs(0))
    assert model(tokens).shape == (2, 5, 40)
    readout = mup.nnx.Readout(TARGET, OUT, BASE, rngs=nnx.Rngs(0))
    x = jnp.ones((3, TARGET))
    np.testing.assert_allclose(readout(x), (x / 4) @ readout.readout_kernel[...], rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: mup.infshapes({"a": jnp.ones((2, 3))}, {"b": jnp.ones((2, 3))}), ValueError, "same parameters"),
        (lambda: mup.infshapes({"a": jnp.ones((2, 3))}, {"a": jnp.ones((2, 3, 4))}), ValueError, "'a' has shape"),
        (lambda: mup.infshapes({"k": {"kernel": jnp.ones((2, 3, 4))}}, {"k": {"kernel": jnp.ones((4, 3, 4))}}),
         ValueError, "cannot tell the fans of parameter 'k/kernel'.*pass fans="),
        (lambda: mup.lr_multipliers(mup.infshapes({"a": jnp.ones(2)}, {"a": jnp.ones(2)}), "lion"), ValueError,
         "optimizer must be one of adam, sgd"),
        (lambda: mup.lr_multipliers({"a": 1.0}), TypeError, "shapes must be the tree of InfShape"),
        (lambda: mup.rescale({"a": jnp.ones(2)}, mup.infshapes({"a": jnp.ones(2)}, {"a": jnp.ones(2)}), draws="x"),
         ValueError, "draws must be one of"),
        (lambda: mup.depth_multiplier(0, 4, 1.0), ValueError, "depth's layers must be a positive int"),
        (lambda: mup.lr_multipliers(mup.infshapes({"a": jnp.ones(2)}, {"a": jnp.ones(4)}, blocks="*"), "sgd",
                                    depth=(8, 4, 1.0)), ValueError, "stated for Adam"),
    ],
)  # fmt: skip
def test_bad_input_names_the_parameter_or_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fans_override_tells_a_kernel_flax_layouts_do_not():
    base = {"qkv": {"kernel": jnp.ones((8, 3, 2, 4))}}
    target = {"qkv": {"kernel": jnp.ones((32, 3, 2, 16))}}
    s = mup.infshapes(base, target, fans={"qkv/*": {"einsum": "btd,dcnh->btcnh"}})
    k = s["qkv"]["kernel"]
    assert (k.role, k.fan_in_mult, k.fan_out_mult) == ("hidden", 4.0, 4.0)


def test_import_flaxinit_does_not_load_mup():
    import subprocess
    import sys

    code = "import sys, flaxinit; print('flaxinit.mup' in sys.modules, 'optax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]


def test_the_guides_walk_throughs_run(tmp_path):
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "mup.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 4
    scope = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", mup.LayoutWarning)  # each walk-through says what infshapes cannot see
        exec(compile(blocks[0].replace("MLP(4096)", "MLP(512)"), "docs/mup.md (linen)", "exec"), scope)
        assert scope["shapes"]["Dense_2"]["kernel"].role == "output"
        exec(compile(blocks[1].replace("Transformer(2048", "Transformer(512"), "docs/mup.md (nnx)", "exec"), scope)
        assert scope["model"](jnp.zeros((2, 5), jnp.int32)).shape == (2, 5, 256)
        exec(compile(blocks[2].replace("Gemmalike(1024", "Gemmalike(512"), "docs/mup.md (fused, tied)", "exec"), scope)
    qkv = scope["shapes"]["block"]["qkv_einsum"]["kernel"]
    assert (qkv.role, qkv.fan_in, qkv.fan_out) == ("hidden", 512, 3 * 512)
    assert scope["model"](jnp.zeros((2, 5), jnp.int32)).shape == (2, 5, 1000)
    png = tmp_path / "coord.png"
    check = blocks[3].replace("[64, 128, 256, 512, 1024]", "[16, 32]").replace("base=64", "base=16")
    exec(compile(check.replace('"coord.png"', repr(str(png))), "docs/mup.md (coordinate check)", "exec"), scope)
    assert math.isfinite(scope["slope"]) and scope["se"] > 0 and png.stat().st_size > 1000


@pytest.mark.parametrize("name", ["FixupBlock", "SkipInitBlock", "ReZeroBlock"])
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_residual_blocks_take_the_depth_multiplier(name, api):
    # x + m f(x): with every parameter moved off its (identity) init, the branch of the block
    # built with m = 1/4 is a quarter of the same block's with m = 1. Each output rounds once
    # in float32 (|x + b| <= 4 here, ulp 5e-7): atol 1e-5 with a margin.
    from flaxinit.blocks import linen as L
    from flaxinit.blocks import nnx as N

    x = jax.random.normal(jax.random.key(12), (4, 8))
    m = mup.depth_multiplier(16, 4, 1.0)
    extra = {"num_branches": 4} if name == "FixupBlock" else {}
    shift = lambda tree: jax.tree.map(lambda p: p + 0.1, tree)  # noqa: E731
    if api == "linen":
        block = getattr(L, name)
        params = shift(block(8, **extra).init(jax.random.key(0), x))
        y1, ym = (block(8, **extra, branch_multiplier=b).apply(params, x) for b in (1.0, m))
    else:
        outs = []
        for b in (1.0, m):
            module = getattr(N, name)(8, **extra, branch_multiplier=b, rngs=nnx.Rngs(0))
            nnx.update(module, shift(nnx.state(module, nnx.Param)))
            outs.append(module(x))
        y1, ym = outs
    assert np.max(np.abs(y1 - x)) > 0.1
    np.testing.assert_allclose(ym - x, m * (y1 - x), atol=1e-5)


def test_partitioned_boxes_and_a_delta_model():
    # linen's logically partitioned kernels are read through their boxes, and rescale keeps them;
    # with a delta model, an axis that differs between base and target but not between base and
    # delta (the input size here) is finite
    class Boxed(nn.Module):
        width: int

        @nn.compact
        def __call__(self, x):
            init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp"))
            x = nn.Dense(self.width, kernel_init=init)(x)
            return nn.Dense(
                OUT, kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("mlp", None))
            )(x)

    def abstract(width, features):
        return jax.eval_shape(Boxed(width).init, jax.random.key(0), jnp.ones((1, features)))

    params = Boxed(TARGET).init(jax.random.key(1), jnp.ones((1, 2 * IN)))
    shapes = mup.infshapes(abstract(BASE, IN), params, abstract(2 * BASE, IN))
    first = shapes["Dense_0"]["kernel"]
    assert (first.role, first.fan_in_mult, first.fan_out_mult, first.infinite) == ("input", 1.0, 4.0, (False, True))
    assert shapes["Dense_1"]["kernel"].role == "output"
    out = mup.rescale(params, shapes)
    assert isinstance(out["params"]["Dense_1"]["kernel"], nn.Partitioned)
    np.testing.assert_allclose(
        out["params"]["Dense_1"]["kernel"].value, params["params"]["Dense_1"]["kernel"].value / 2
    )
