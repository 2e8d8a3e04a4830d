"""Flax code as people write it, through the audit, μP and the checks, with no wrapper module.

The models (``real_models.py``) follow flax's examples (imagenet, lm1b, wmt, sst2, the nnx
Gemma) and big_vision's ViT. Each is audited, its μP shapes read (the bare ``mup.infshapes``
on its parameter trees, as a user calls it), rescaled, trained 5 μP steps and put through a
coordinate check, called the way the original is called: ``call_kwargs`` for training mode
and second inputs, ``output`` for a model that returns a tuple.

Monte Carlo comparisons use Z = 4.5 standard errors (a fixed-key test a correct
implementation fails with probability below 1e-5 per comparison). Training checks use
fixed keys and a learning rate far from the edge of stability, so that 5 Adam steps on one
batch lower the loss by far more than any rounding could move it.
"""

import functools
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
import real_models
from flax import nnx
from real_models import BASE, CLASSES, DEPTH, HEADS, VOCAB

import flaxinit
import mc
from flaxinit import mup

Z = 4.5
CASES = real_models.cases()
OUTPUT = "(output)"
HERE = Path(__file__).parent


def _is_nnx(name):
    return name.startswith("nnx")


# --- the audit -------------------------------------------------------------------------------------


@functools.cache
def _audit(name):
    model_at, x, call, _ = CASES[name]
    return mc.audit(model_at(2 * BASE), x, 16, key=1, **call)


#: The default tier audits the stacked, the dropout and the nnx pattern (each audit compiles
#: for about 20 s on a 2-core CPU); the slow tier every pattern.
DEFAULT_TIER = ("vit-scan-remat", "decoder-dropout", "nnx-fused-tied")
NAMES = [pytest.param(n, marks=[] if n in DEFAULT_TIER else [pytest.mark.slow]) for n in sorted(CASES)]


@pytest.mark.parametrize("name", NAMES)
def test_every_pattern_audits_with_finite_figures(name):
    result = _audit(name)
    assert result.layers[-1].path == OUTPUT and len(result.layers) >= 3
    for layer in result.layers:
        assert all(math.isfinite(getattr(layer, f)) for f in ("mean_abs", "rms", "grad_rms")), layer
    for param in result.params:
        assert math.isfinite(param.rms) and math.isfinite(param.grad_rms), param


# the rows a pattern must have: its stacks, its training-mode layers, its recurrent steps
ROWS = {
    "resnet-batchnorm": ["bn_init", "ResNetBlock_1/norm_proj", "Dense_0"],
    "decoder-dropout": ["DecoderBlock_1/MultiHeadDotProductAttention_0", "Dropout_0", "logits"],
    "tied-encoder-decoder": ["cross_attention", "Readout_0"],
    "bilstm-lengths": ["LSTMCell_0[0]/ii", "LSTMCell_1[5]/ho"],  # the cells belong to the model, as do their params
    "vit-scan-remat": [f"encoderblock[{i}]/{layer}" for i in range(DEPTH)
                       for layer in ("MultiHeadDotProductAttention_0", "Dense_1")],
    "nnx-fused-tied": ["block/qkv_einsum", "block/attn_vec_einsum", "readout"],
}  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_every_pattern_has_its_layers_rows(name):
    paths = [layer.path for layer in _audit(name).layers]
    missing = [row for row in ROWS[name] if row not in paths]
    assert not missing, (missing, paths)


def test_remat_inside_scan_is_named_as_a_plain_scan():
    # nn.scan(nn.remat(Block)) reads as nn.scan(Block): the index after the stack's root, and
    # one parameter row per layer of the stack
    result = _audit("vit-scan-remat")
    params = {p.path: p.shape for p in result.params}
    width = 2 * BASE
    for i in range(DEPTH):
        query = params[f"encoderblock/MultiHeadDotProductAttention_0/query/kernel[{i}]"]
        assert query == (width, HEADS, width // HEADS)
        assert params[f"encoderblock/Dense_1/kernel[{i}]"] == (width, 4 * width)  # the inner Dense is made first
    assert not any("]/" in p for p in params), "no stack index inside a parameter's module path"


@pytest.mark.slow  # another compilation of the decoder
def test_a_decode_step_fills_and_drops_its_cache():
    # lm1b's decoder in decode mode, one token: the cache collection is created by init and
    # updated (then dropped) by the apply, as batch statistics are
    model = real_models.Decoder(2 * BASE, decode=True)
    result = mc.audit(model, real_models.tokens()[:, :1], 16, key=1)
    assert result.layers[-1].path == OUTPUT and math.isfinite(result.layers[-1].rms)


def test_a_tuple_output_without_a_selector_is_an_error_that_names_output():
    with pytest.raises(TypeError, match="pass output="):
        mc.audit(real_models.ViT(BASE), real_models.images(), 8, key=0)


# --- μP on the parameter trees, as a user calls it ----------------------------------------------------


def _params_and_model(name, width, key=0):
    """(parameters, model) of the pattern at ``width``, built as its user builds it."""
    model_at, x, call, _ = CASES[name]
    if _is_nnx(name):
        model = model_at(width)(nnx.Rngs(key))
        return nnx.state(model, nnx.Param), model
    model = model_at(width)
    rngs = {"params": jax.random.key(key), "dropout": jax.random.key(key + 1)}
    return model.init(rngs, x, **call.get("call_kwargs", {})), model


def _shapes(name, width=BASE):
    """The pattern's parameters at ``width`` as ``jax.ShapeDtypeStruct`` (nothing is built)."""
    model_at, x, call, _ = CASES[name]
    if _is_nnx(name):
        return jax.eval_shape(lambda: nnx.state(model_at(width)(nnx.Rngs(0)), nnx.Param))
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    return jax.eval_shape(lambda: model_at(width).init(rngs, x, **call.get("call_kwargs", {})))


#: What each pattern's user passes to infshapes and rescale: the layouts Flax's do not tell
#: (Gemma's einsum kernels), the tied readouts, the fixed-std draws (Gemma's MLP).
INFSHAPES = {
    "tied-encoder-decoder": {"tied_readout": True},
    "nnx-fused-tied": {"tied_readout": True, "fans": {"*/qkv_einsum/kernel": {"einsum": "BTD,SNDH->SBTNH"},
                                                      "*/attn_vec_einsum/kernel": {"einsum": "BTNH,NHD->BTD"}}},
}  # fmt: skip
DRAWS = {"nnx-fused-tied": {"block/mlp_*": "fixed"}}


def _flat(shapes):
    return {s.path: s for s in jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, mup.InfShape))}


def _mup_shapes(name, variables):
    with warnings.catch_warnings():
        warnings.simplefilter("error", mup.LayoutWarning)
        return mup.infshapes(_shapes(name), variables, **INFSHAPES.get(name, {}))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_pattern_infshapes_without_warnings(name):
    shapes = _flat(_mup_shapes(name, _shapes(name, 4 * BASE)))
    roles = {s.role for s in shapes.values()}
    assert {"input", "hidden"} <= roles and ("output" in roles or name in INFSHAPES), roles


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[] if n in ("vit-scan-remat", "nnx-fused-tied") else [pytest.mark.slow])
             for n in sorted(CASES)]
)  # fmt: skip
def test_every_pattern_rescales_and_trains_five_mup_steps(name):
    _, x, call, targets = CASES[name]
    variables, model = _params_and_model(name, 4 * BASE)
    shapes = _mup_shapes(name, variables)
    params = mup.rescale(variables, shapes, draws=DRAWS.get(name, "fan_in"))
    tx = mup.adamw(1e-2, shapes=shapes)
    kwargs = dict(call.get("call_kwargs", {}))
    select = (lambda y: y[call["output"]]) if "output" in call else (lambda y: y)

    if _is_nnx(name):
        graphdef, _, rest = nnx.split(model, nnx.Param, ...)

        def forward(p):
            return select(nnx.merge(graphdef, p, rest)(x, **kwargs))

        trainable = params
    else:
        others = {k: v for k, v in params.items() if k != "params"}

        def forward(p):
            out = model.apply({**others, "params": p}, x, **kwargs, rngs={"dropout": jax.random.key(7)},
                              mutable=[k for k in others])  # fmt: skip
            return select(out[0])

        trainable = params["params"]

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(forward(p), targets).mean()

    @jax.jit
    def step(p, state):
        value, grads = jax.value_and_grad(loss)(p)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, value

    state = tx.init(trainable)
    losses = []
    for _ in range(5):
        trainable, state, value = step(trainable, state)
        losses.append(float(value))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses


def test_scanned_parameters_get_their_layers_fans_and_roles():
    # big_vision's ViT with scan=True: the stacked attention kernels (depth, features, heads,
    # head_dim) need no fans= entry, and a stacked Dense's layer axis counts in no fan
    shapes = _flat(mup.infshapes(_shapes("vit-scan-remat"), _shapes("vit-scan-remat", 4 * BASE)))
    width = 4 * BASE
    key = shapes["encoderblock/MultiHeadDotProductAttention_0/key/kernel"]
    assert (key.role, key.stacked, key.fan_in, key.fan_out, key.fan_in_mult) == ("hidden", 1, width, width, 4.0)
    up = shapes["encoderblock/Dense_1/kernel"]  # (depth, width, 4 width): the inner Dense is made first
    assert (up.role, up.stacked, up.fan_in, up.fan_out) == ("hidden", 1, width, 4 * width)
    scale = shapes["encoderblock/LayerNorm_0/scale"]
    assert (scale.role, scale.stacked, scale.fan_in) == ("input", 1, 1)
    assert shapes["head/kernel"].role == "output" and shapes["embedding/kernel"].role == "input"


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_a_depth_sweep_of_a_scanned_stack_reads_the_layer_axis_as_a_stack(api):
    # the layer axis grows from base to target (more blocks) but feeds neither fan
    def linen_params(layers):
        class Stack(nn.Module):
            @nn.compact
            def __call__(self, x):
                block = nn.scan(lambda m, c, _: (c + nn.Dense(BASE)(c), None), variable_axes={"params": 0},
                                split_rngs={"params": True}, length=layers)  # fmt: skip
                return nn.Dense(CLASSES)(block(self, x, None)[0])

        return jax.eval_shape(Stack().init, jax.random.key(0), jnp.ones((2, BASE)))

    def nnx_params(layers):
        def build():
            @nnx.split_rngs(splits=layers)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def create(rngs):
                return nnx.Linear(BASE, BASE, rngs=rngs)

            return nnx.state(create(nnx.Rngs(0)), nnx.Param)

        return jax.eval_shape(build)

    params_of = linen_params if api == "linen" else nnx_params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mup.LayoutWarning)  # no readout grows in a depth sweep
        shapes = _flat(mup.infshapes(params_of(2), params_of(8)))
    kernel = next(s for p, s in shapes.items() if p.endswith("kernel") and s.stacked)
    assert (kernel.stacked, kernel.fan_in, kernel.role, kernel.infinite[0]) == (1, BASE, "finite", True)


def test_a_guessed_layout_and_a_missing_readout_warn_naming_what_to_pass():
    name = "nnx-fused-tied"
    base, params = _shapes(name), _shapes(name, 4 * BASE)
    with pytest.warns(mup.LayoutWarning) as caught:
        mup.infshapes(base, params)
    messages = [str(w.message) for w in caught]
    assert any("block/qkv_einsum/kernel" in m and "fans=" in m for m in messages), messages
    assert any("mup.Readout(tied=True)" in m and "embedder/embedding" in m for m in messages), messages


def test_wmts_attend_readout_has_no_output_role_and_says_so():
    x, call = CASES["tied-encoder-decoder"][1:3]
    model_at = lambda w: real_models.TiedEncoderDecoder(w, read_out="attend")  # noqa: E731
    base, target = (jax.eval_shape(model_at(w).init, jax.random.key(0), x, **call["call_kwargs"]) for w in (BASE, 64))
    with pytest.warns(mup.LayoutWarning, match=r"shared_embedding/embedding.*Embed.attend"):
        shapes = mup.infshapes(base, target)
    assert not any(s.role == "output" for s in _flat(shapes).values())


def test_a_growing_axis_no_layout_explains_is_an_error_naming_fans_and_stacked():
    base = {"fused": {"kernel": jnp.ones((3, 4, 8, 2))}}
    target = {"fused": {"kernel": jnp.ones((3, 8, 16, 4))}}
    with pytest.raises(ValueError, match=r"'fused/kernel'.*pass fans=.*stacked="):
        mup.infshapes(base, target)


def test_rescale_takes_draws_per_path_glob():
    # Gemma: normal(0.01) MLP kernels (fixed std: hidden times 1/sqrt(m_in)) beside fan-in
    # einsum kernels (kept); the tied readout has no kernel
    name = "nnx-fused-tied"
    params, _ = _params_and_model(name, 4 * BASE)
    shapes = mup.infshapes(_shapes(name), params, **INFSHAPES[name])
    new = _flat_arrays(mup.rescale(params, shapes, draws=DRAWS[name]))
    old = _flat_arrays(params)
    up, qkv = "block/mlp_up/kernel", "block/qkv_einsum/kernel"
    assert (new[up] == old[up] * jnp.float32(1 / math.sqrt(4))).all()  # m_in = 4 (width 16 -> 64)
    assert (new[qkv] == old[qkv]).all()
    with pytest.raises(ValueError, match=r"draws\['\*/mlp'\] must be one of fan_in, fixed"):
        mup.rescale(params, shapes, draws={"*/mlp": "fixd"})


def _flat_arrays(tree):
    return {s: leaf for s, leaf in _path_leaves(tree)}


def _path_leaves(tree):
    for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        keys = [k for k in keys if not (isinstance(k, jax.tree_util.GetAttrKey) and k.name == "value")]
        yield "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in keys), leaf


# --- the checks take call_kwargs, method and output ------------------------------------------------------


@pytest.mark.slow  # a coordinate check of every pattern: two widths compiled each
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_pattern_runs_a_coordinate_check(name):
    model_at, x, call, targets = CASES[name]
    result = mc.coord_check(model_at, [BASE, 2 * BASE], x, targets, base=BASE, lr=0.01, steps=2, seeds=2,
                            **call)  # fmt: skip
    assert result.paths[-1] == OUTPUT
    assert all(math.isfinite(r.mean_abs) for r in result.rows)


class TwoInputsTupleOut(nn.Module):
    """A second input by keyword, a method besides ``__call__`` and a ``(logits, extras)`` return."""

    width: int

    @nn.compact
    def __call__(self, x, shift):
        h = nn.relu(nn.Dense(self.width)(x + shift))
        return nn.Dense(CLASSES)(nn.relu(nn.Dense(self.width)(h))), {"hidden": h}

    def halved(self, x, shift):
        return self(x / 2, shift)


CALLS = [{"call_kwargs": {"shift": 1.0}, "output": 0},
         {"call_kwargs": {"shift": 1.0}, "method": "halved", "output": lambda r: r[0]}]  # fmt: skip


@pytest.mark.parametrize("call", [pytest.param(CALLS[0], id="index", marks=pytest.mark.slow),
                                  pytest.param(CALLS[1], id="method-and-function")])  # fmt: skip
def test_coord_check_and_lr_transfer_take_call_kwargs_method_and_output(call):
    x = jax.random.normal(jax.random.key(0), (8, 6))
    y = real_models.labels(8)
    audit = mc.audit(TwoInputsTupleOut(BASE), x, 8, key=0, **call)
    r = mc.coord_check(TwoInputsTupleOut, [BASE, 2 * BASE], x, y, base=BASE, lr=0.01, steps=2, seeds=2, **call)
    assert [row.path for row in r.rows if row.width == BASE and row.step == 1] == [a.path for a in audit.layers]
    t = mc.lr_transfer(TwoInputsTupleOut, [BASE, 2 * BASE], [-8, -6, -4], x, y, base=BASE, steps=2, batch_size=4,
                       seeds=2, **call)  # fmt: skip
    assert all(math.isfinite(v) for row in t.loss_mean for v in row)


def test_the_checks_name_a_bad_output_or_call_option():
    x, y = jax.random.normal(jax.random.key(0), (8, 6)), real_models.labels(8)
    with pytest.raises(TypeError, match="output must pick the model's output"):
        mc.coord_check(TwoInputsTupleOut, [BASE, 2 * BASE], x, y, base=BASE, lr=0.01, output=1.5)
    with pytest.raises(TypeError, match="call_kwargs must be a mapping"):
        mc.lr_transfer(TwoInputsTupleOut, [BASE, 2 * BASE], [-8, -6, -4], x, y, base=BASE, steps=2, batch_size=4,
                       call_kwargs=[("shift", 1.0)])  # fmt: skip


# --- expected std, the audit's init= ---------------------------------------------------------------------


def test_expected_std_of_linen_attention_kernels_is_the_flat_draws():
    # linen draws q/k/v as (features, heads * head_dim) and reshapes: xavier_standard's std at
    # width 32 is 1/sqrt(3 * 32), whatever the number of heads
    init = flaxinit.xavier_standard()
    model = nn.MultiHeadDotProductAttention(num_heads=4, kernel_init=init, use_bias=False)
    x = jax.random.normal(jax.random.key(0), (2, 3, 32))
    result = mc.audit(model, x, 64, key=2, init=init)
    for p in result.params:
        assert p.expected_std == pytest.approx(1 / math.sqrt(3 * 32), rel=1e-12), p
        assert abs(p.rms - p.expected_std) < Z * p.rms_se + 1e-6, p


def test_audit_init_may_name_an_initializer_per_path_glob():
    model = nn.Sequential([nn.Embed(VOCAB, 32), nn.Dense(32)])
    inits = {"*/embedding": flaxinit.normal(1.0), "*/kernel": flaxinit.lecun_normal()}
    result = mc.audit(model, real_models.tokens(), 8, key=0, init=inits)
    expected = {p.path: p.expected_std for p in result.params}
    assert expected["layers_0/embedding"] == 1.0
    assert expected["layers_1/kernel"] == pytest.approx(1 / math.sqrt(32), rel=1e-12)
    assert expected["layers_1/bias"] is None


# --- a second audit compiles nothing ------------------------------------------------------------------


def test_a_second_audit_of_the_same_model_compiles_nothing():
    # counted by jax's own events: tracing a function to a jaxpr, compiling an executable
    events = []

    def listen(event, duration, **kwargs):
        if event in ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration"):
            events.append(event)

    first = _audit("decoder-dropout")  # an equal model, on tokens of the same shape
    model_at, x, call, _ = CASES["decoder-dropout"]
    other_tokens, key = (x + 1) % VOCAB, mc.philox_key(3)  # made before counting: eager ops compile too
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        again = mc.audit(model_at(2 * BASE), other_tokens, 32, key=key, **call)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert events == []
    assert again.iterations == 32 and again.layers[-1].rms != first.layers[-1].rms


# --- recurrent cells: their orthogonal init, vmapped, must not deadlock -------------------------------------


def _audit_recurrent(specs, timeout):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run([sys.executable, str(HERE / "audit_recurrent.py"), *specs], capture_output=True,
                              text=True, timeout=timeout, env=env)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the audit of {specs} did not return in {timeout} s (a deadlock?): {e.stdout!r}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(specs), done.stdout


def test_the_audit_returns_on_lstms_with_their_orthogonal_recurrent_init():
    _audit_recurrent(["linen:OptimizedLSTMCell", "nnx:LSTMCell"], timeout=420)


@pytest.mark.slow  # every cell flax ships, in both APIs: one process, many compilations
def test_the_audit_returns_on_every_recurrent_cell_flax_ships():
    linen = ["SimpleCell", "GRUCell", "LSTMCell", "OptimizedLSTMCell", "MGUCell", "Bidirectional"]
    nnx_cells = ["SimpleCell", "GRUCell", "LSTMCell", "OptimizedLSTMCell", "Bidirectional"]  # nnx has no MGUCell
    _audit_recurrent([f"linen:{c}" for c in linen] + [f"nnx:{c}" for c in nnx_cells], timeout=1500)
