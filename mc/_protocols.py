"""The article's magnitude tests (SPEC section 3) and the depth test, on the engine.

Every iteration draws its weights by calling the given flaxinit initializer with its
own key, so the Monte Carlo checks the shipped code. Sums inside an iteration use
:func:`mc._engine.tree_sum`, whose order of additions is spelled out.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp

import flaxinit
from flaxinit.magnitude import CONVENTIONS, normalized_passes
from flaxinit.prng import is_philox
from flaxinit.tooling import check_choice, check_int
from mc._engine import BLOCK, Accumulator, Engine, tree_sum
from mc._keys import as_key, prng_name
from mc._results import DepthResult, NormalizedResult, StandardResult, ci95

INPUTS = ("ones", "gaussian", "one_hot", "softmax")
#: The activations by name besides every elementwise ``jax.nn`` one: the article's four.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")


def activation_function(activation: str | Callable[[jax.Array], jax.Array]) -> tuple[str, Callable]:
    """``(name, phi)`` for an activation given by name (``"linear"`` or any elementwise ``jax.nn``
    function) or as a callable; its derivative is ``jax.grad`` of it, elementwise."""
    if callable(activation):
        return getattr(activation, "__name__", type(activation).__name__), activation
    if activation == "linear":
        return "linear", lambda z: z
    function = getattr(jax.nn, activation, None) if isinstance(activation, str) else None
    if function is None or activation.startswith("_") or not callable(function) or activation in _NOT_ELEMENTWISE:
        raise ValueError(
            f"activation must be 'linear', an elementwise jax.nn activation ('relu', 'gelu', ...) or a callable, "
            f"got {activation!r}"
        )
    return activation, function


_NOT_ELEMENTWISE = {"dot_product_attention", "glu", "log_softmax", "logsumexp", "one_hot", "softmax", "standardize"}

R = TypeVar("R")

# The article's baselines, the tests' default schemes (initializers are immutable).
XAVIER_STANDARD = flaxinit.xavier_standard()
XAVIER_NORMALIZED = flaxinit.xavier_normalized()


# --- argument checks (flaxinit's, so one mistake gets one message and one exception type) ----


def _check_init(init: Any) -> Callable:
    if not callable(init):
        raise TypeError(f"init must be an initializer init(key, shape, dtype), got {init!r}")
    return init


def _check_chunk(chunk_size: Any) -> int | None:
    return None if chunk_size is None else check_int(chunk_size, "chunk_size")


def _check_shapes(shapes: Any) -> list[tuple[int, int]]:
    out = []
    for shape in shapes:
        if not isinstance(shape, Sequence) or len(shape) != 2:
            raise ValueError(f"each shape must be a pair (n_in, n_out) of positive integers, got {shape!r}")
        out.append((check_int(shape[0], "n_in"), check_int(shape[1], "n_out")))
    if not out:
        raise ValueError("shapes must not be empty")
    return out


#: Random values one group of iterations draws at most: the iterations of a task share a
#: key in groups as large as fit (a power of two), so that small kernels do not pay one key
#: and one partial Philox block per iteration.
GROUP_VALUES = 4096


def _group(key: jax.Array, init: Any, values_per_iteration: int) -> int:
    """How many iterations share a key: 1 unless ``key`` is Philox and ``init`` stacks."""
    stacked = getattr(init, "stacked", None)
    if not is_philox(key) or stacked is None or stacked() is None:
        return 1
    group = 1
    while group < BLOCK and 2 * group * values_per_iteration <= GROUP_VALUES:
        group *= 2
    return group


def _draw_stack(init: Callable, shape: tuple[int, ...], group: int) -> Callable[[jax.Array], jax.Array]:
    """``key -> float32[group, *shape]``: ``group`` kernels of ``shape`` from one key, drawn by
    ``init`` (its :meth:`~flaxinit.Initializer.stacked` form for more than one)."""
    if group == 1:
        draw = lambda k: init(k, shape, jnp.float32)[None]  # noqa: E731
    else:
        stacked = init.stacked()
        draw = lambda k: stacked(k, (group, *shape), jnp.float32)  # noqa: E731
    return draw


def _cached(build: Callable[..., Engine]) -> Callable[..., Engine]:
    """Keeps the engines ``build`` makes, by its arguments, so that a task built again (the same
    statistic, shapes, initializer and group) reuses the compiled kernels: a second
    ``standard_test`` does not recompile. Unhashable arguments (a custom initializer that is
    not hashable) build a new engine every time."""
    cached = functools.lru_cache(maxsize=256)(build)

    @functools.wraps(build)
    def engine(*args: Any) -> Engine:
        try:
            return cached(*args)
        except TypeError as err:
            if "unhashable" not in str(err):
                raise
            return build(*args)

    return engine


# --- exact expectations -----------------------------------------------------------------


def _abs_sum_expectation(init: Callable, shape: tuple[int, int], terms: int) -> float | None:
    """E|sum of ``terms`` iid weights| drawn as for a kernel of ``shape``, where known."""
    method = getattr(init, "expected_abs_sum", None)
    return method(shape, terms) if method is not None else None


def _bound(init: Callable, shape: tuple[int, ...]) -> float | None:
    return init.bound(shape) if getattr(init, "distribution", None) == "uniform" else None


def _scheme_name(init: Callable) -> str:
    return getattr(init, "name", getattr(init, "__name__", type(init).__name__))


# --- tasks --------------------------------------------------------------------------------


@dataclasses.dataclass
class Task(Generic[R]):
    """One row of a table: an engine, its key and iteration count, and how to report it.

    The public functions (:func:`standard_test`, ...) build tasks and run them at once.
    Build them yourself (:func:`standard_tasks`, :func:`normalized_tasks`,
    :func:`depth_task`) to run a test in pieces: ``task.run(acc, on_chunk=...)`` calls
    ``on_chunk(acc)`` after every device call, and a run stopped there resumes from
    ``acc`` (an :class:`mc._engine.Accumulator`, which ``to_dict``/``from_dict`` store)
    with the bits of an uninterrupted one; ``python -m mc`` runs tasks this way.

    Attributes:
      label: the row's name (``"standard n=25"``).
      engine: the compiled statistic.
      key: the row's key.
      iterations: the iterations to run.
      finalize: turns the finished accumulator into the typed result.
      data: the arrays the engine's statistic reads besides its key (the audit's inputs),
        passed to every device call; None for a statistic of its key alone.
    """

    label: str
    engine: Engine
    key: jax.Array
    iterations: int
    finalize: Callable[[Accumulator], R]
    data: Any = None

    def new_accumulator(self) -> Accumulator:
        """An empty accumulator for this task."""
        return Accumulator(self.iterations, self.engine.num_stats)

    def run(
        self,
        acc: Accumulator | None = None,
        chunk_size: int | None = None,
        on_chunk: Callable[[Accumulator], None] | None = None,
    ) -> R:
        """Runs the iterations ``acc`` has not done yet (all, by default); returns the result."""
        acc = acc if acc is not None else self.new_accumulator()
        return self.finalize(self.engine.run(self.key, acc, chunk_size, on_chunk, self.data))


def standard_tasks(key, sizes, iterations, init, inputs="ones", prng="philox") -> list[Task[StandardResult]]:
    """The tasks behind :func:`standard_test` (same arguments), one per size, not yet run."""
    key, init = as_key(key, prng), _check_init(init)
    iterations = check_int(iterations, "iterations")
    check_choice(inputs, "inputs", INPUTS)
    sizes = [check_int(n, "each size") for n in sizes]
    if not sizes:
        raise ValueError("sizes must not be empty")
    return [_standard_task(key, n, iterations, init, inputs) for n in sizes]


@_cached
def _standard_engine(n: int, init: Callable, inputs: str, group: int) -> Engine:
    draw = _draw_stack(init, (n, 1), group)

    def stat(k):  # [group, 1]
        if inputs == "ones":
            z = tree_sum(draw(k)[:, :, 0], 1)
        else:
            k_w, k_x = jax.random.split(k)
            w = draw(k_w)[:, :, 0]
            if inputs == "one_hot":
                hot = jax.random.randint(k_x, (group,), 0, n)
                z = jnp.take_along_axis(w, hot[:, None], axis=1)[:, 0]
            else:
                x = jax.random.normal(k_x, (group, n), jnp.float32)
                x = jax.nn.softmax(x, axis=1) if inputs == "softmax" else x
                z = tree_sum(x * w, 1)
        return jnp.abs(z)[:, None]

    return Engine(stat, 1, bytes_per_iteration=64 + 16 * n, group=group)  # keys and intermediates


def _standard_task(key, n, iterations, init, inputs) -> Task[StandardResult]:
    shape = (n, 1)
    if inputs == "ones":
        expected = _abs_sum_expectation(init, shape, n)
    elif inputs == "one_hot":
        expected = _abs_sum_expectation(init, shape, 1)
    else:
        expected = None
    prng = prng_name(key)

    def finalize(acc: Accumulator) -> StandardResult:
        (mean,), (se,) = acc.moments()
        return StandardResult(
            size=n,
            scheme=_scheme_name(init),
            inputs=inputs,
            iterations=acc.iterations_done,
            mean=mean,
            se=se,
            ci95=ci95(mean, se),
            expected=expected,
            bound=_bound(init, shape),
            prng=prng,
        )

    values = n if inputs in ("ones", "one_hot") else 2 * n
    engine = _standard_engine(n, init, inputs, _group(key, init, values))
    return Task(f"standard n={n}", engine, jax.random.fold_in(key, n), iterations, finalize)


def normalized_tasks(
    key, shapes, iterations, init, convention="article", prng="philox"
) -> list[Task[NormalizedResult]]:
    """The tasks behind :func:`normalized_test` (same arguments), one per shape, not yet run."""
    key, init = as_key(key, prng), _check_init(init)
    iterations = check_int(iterations, "iterations")
    check_choice(convention, "convention", CONVENTIONS)
    return [_normalized_task(key, shape, iterations, init, convention) for shape in _check_shapes(shapes)]


@_cached
def _normalized_engine(shape: tuple[int, int], init: Callable, group: int) -> Engine:
    n_in, n_out = shape
    draw = _draw_stack(init, shape, group)

    def stat(k):  # [group, 3]: the totals; the conventions' divisions happen on the host
        w = draw(k)
        # sums over large drawn arrays: five fused levels (see tree_sum; the same bits)
        t_row = tree_sum(jnp.abs(tree_sum(w, 2, fused_levels=5)), 1, fused_levels=5)  # each input node's outgoing sum
        t_col = tree_sum(jnp.abs(tree_sum(w, 1, fused_levels=5)), 1, fused_levels=5)  # each output node's incoming sum
        return jnp.stack([t_row, t_col, t_row + t_col], axis=1)

    return Engine(stat, 3, bytes_per_iteration=64 + 16 * n_in * n_out, group=group)


def _normalized_task(key, shape, iterations, init, convention) -> Task[NormalizedResult]:
    n_in, n_out = shape
    e_out = _abs_sum_expectation(init, shape, n_out)  # E|sum over a row|
    e_in = _abs_sum_expectation(init, shape, n_in)  # E|sum over a column|
    if e_out is None or e_in is None:
        expected = (None, None, None)
    else:
        expected = normalized_passes(n_in * e_out, n_out * e_in, n_in, n_out, convention)
    prng = prng_name(key)

    def finalize(acc: Accumulator) -> NormalizedResult:
        # every pass is a total over a positive constant: divide the totals' means and errors
        # here, in float64 (in the kernel, XLA may turn x / 3 into x * (1/3) in one program and
        # not in another, and the last bits would depend on it)
        (row, col, both), (row_se, col_se, both_se) = acc.moments()
        f, b, _ = normalized_passes(row, col, n_in, n_out, convention)
        f_se, b_se, _ = normalized_passes(row_se, col_se, n_in, n_out, convention)
        a, a_se = both / (n_in + n_out), both_se / (n_in + n_out)
        return NormalizedResult(
            n_in=n_in,
            n_out=n_out,
            scheme=_scheme_name(init),
            convention=convention,
            iterations=acc.iterations_done,
            forward=f,
            backward=b,
            avg=a,
            forward_se=f_se,
            backward_se=b_se,
            avg_se=a_se,
            forward_ci95=ci95(f, f_se),
            backward_ci95=ci95(b, b_se),
            avg_ci95=ci95(a, a_se),
            expected_forward=expected[0],
            expected_backward=expected[1],
            expected_avg=expected[2],
            bound=_bound(init, shape),
            prng=prng,
        )

    engine = _normalized_engine(shape, init, _group(key, init, n_in * n_out))
    label = f"normalized {n_in}x{n_out}"
    return Task(label, engine, jax.random.fold_in(jax.random.fold_in(key, n_in), n_out), iterations, finalize)


def _layer_inits(init: Any, depth: int) -> list[Callable]:
    """One initializer per layer: ``init`` for all, or a sequence of ``depth`` of them."""
    if callable(init):
        return [init] * depth
    inits = list(init) if isinstance(init, Sequence) and not isinstance(init, str) else []
    if len(inits) != depth:
        raise TypeError(f"init must be an initializer or a sequence of one per layer ({depth}), got {init!r}")
    return [_check_init(i) for i in inits]


def depth_task(key, widths, activation, init, iterations, inputs="ones", prng="philox") -> Task[DepthResult]:
    """The task behind :func:`depth_test` (same arguments), not yet run."""
    key = as_key(key, prng)
    iterations = check_int(iterations, "iterations")
    name, act = activation_function(activation)
    check_choice(inputs, "inputs", ("ones", "gaussian"))
    widths = tuple(check_int(w, "each width") for w in widths)
    if len(widths) < 2:
        raise ValueError(f"widths must list at least an input and one layer width, got {widths!r}")
    depth = len(widths) - 1
    inits = tuple(_layer_inits(init, depth))
    prng = prng_name(key)

    def finalize(acc: Accumulator) -> DepthResult:
        means, ses = acc.moments()
        per_node = [w for _ in range(3) for w in widths[1:]]  # each statistic is a sum over a layer's nodes
        means, ses = ([v / w for v, w in zip(x, per_node, strict=True)] for x in (means, ses))
        parts = [slice(0, depth), slice(depth, 2 * depth), slice(2 * depth, 3 * depth)]
        (fwd, bwd, sq), (fwd_se, bwd_se, sq_se) = ([tuple(v[p]) for p in parts] for v in (means, ses))
        return DepthResult(
            widths=widths,
            activation=name,
            scheme=" + ".join(dict.fromkeys(map(_scheme_name, inits))),
            inputs=inputs,
            iterations=acc.iterations_done,
            forward=fwd,
            backward=bwd,
            forward_se=fwd_se,
            backward_se=bwd_se,
            preactivation_ms=sq,
            preactivation_ms_se=sq_se,
            prng=prng,
        )

    return Task(f"depth {name}", _depth_engine(widths, act, inits, inputs), key, iterations, finalize)


@_cached
def _depth_engine(widths: tuple[int, ...], act: Callable, inits: tuple[Callable, ...], inputs: str) -> Engine:
    dact = jax.vmap(jax.grad(lambda z: act(z)))
    shapes = list(itertools.pairwise(widths))
    depth = len(shapes)

    def stat(k):  # [1, 3 * depth]
        k_w, k_x = jax.random.split(k)
        kernels = [
            i(jax.random.fold_in(k_w, layer), s, jnp.float32)
            for layer, (i, s) in enumerate(zip(inits, shapes, strict=True))
        ]
        a = jnp.ones(widths[0]) if inputs == "ones" else jax.random.normal(k_x, (widths[0],))
        pre, fwd, square = [], [], []
        for w in kernels:  # sums over each layer's nodes; the host divides them by its width
            z = tree_sum(a[:, None] * w, 0)
            a = act(z)
            pre.append(z)
            fwd.append(tree_sum(jnp.abs(a)))
            square.append(tree_sum(z * z))
        delta = dact(pre[-1])  # all-ones error at the output
        bwd = [tree_sum(jnp.abs(delta))]
        for layer in range(depth - 1, 0, -1):
            delta = tree_sum(kernels[layer] * delta[None, :], 1) * dact(pre[layer - 1])
            bwd.append(tree_sum(jnp.abs(delta)))
        return jnp.stack(fwd + bwd[::-1] + square)[None]

    per_iteration = 64 + 16 * sum(a * b for a, b in shapes)
    return Engine(stat, 3 * depth, bytes_per_iteration=per_iteration)


# --- the public functions ----------------------------------------------------------------------


def standard_test(
    key: jax.Array | int,
    sizes: Sequence[int],
    iterations: int,
    init: Callable = XAVIER_STANDARD,
    *,
    chunk_size: int | None = None,
    inputs: str = "ones",
) -> list[StandardResult]:
    """The article's standard test: per size ``n``, the mean of ``|sum of n weights|``.

    Each iteration draws a ``(n, 1)`` kernel by calling ``init`` with its own key and
    feeds it ``inputs``: ones (the article's test), a standard-normal vector, a random
    one-hot vector, or the softmax of a standard-normal vector. One-hot and softmax
    inputs have total magnitude 1, which is why the Active Node Method uses ``fan_in=1``.

    Args:
      key: a PRNG key, or an int seed, which becomes the Philox key
        :func:`flaxinit.prng.philox_key` (the fast generator; a key keeps its own type:
        pass ``jax.random.key(seed)`` for threefry's bits). Size ``n`` uses ``fold_in(key, n)``.
      sizes: layer sizes ``n``.
      iterations: iterations per size.
      init: a flaxinit initializer (any ``init(key, shape, dtype)`` works; the exact
        expectation is known for flaxinit's uniform, normal and constant schemes).
      chunk_size: iterations each device runs per call (rounded up to whole chunks): how
        often progress is reported and Ctrl-C honoured. Default: about
        ``mc._engine.CALL_BYTES`` of work. What a device evaluates at once (vmapped) is
        fixed by the statistic's memory: a per-device budget of ``mc._engine.CPU_CHUNK_BYTES``
        (2 MiB, cache-sized) on CPUs and ``ACCELERATOR_CHUNK_BYTES`` (512 MiB) on
        accelerators, so the statistic is compiled for one batch shape. Results are
        bit-identical for every ``chunk_size``, device count and process count.
      inputs: ``"ones"``, ``"gaussian"``, ``"one_hot"`` or ``"softmax"``.

    Returns:
      A :class:`StandardResult` per size, in the order of ``sizes``.

    Examples:
      >>> import flaxinit, mc
      >>> [r] = mc.standard_test(0, [25], 4096, flaxinit.letkeman_standard())
      >>> r.expected, abs(r.mean - 1) < 4 * r.se
      (1.0, True)
    """
    chunk_size = _check_chunk(chunk_size)
    return [task.run(chunk_size=chunk_size) for task in standard_tasks(key, sizes, iterations, init, inputs)]


def normalized_test(
    key: jax.Array | int,
    shapes: Sequence[tuple[int, int]],
    iterations: int,
    init: Callable = XAVIER_NORMALIZED,
    *,
    convention: str = "article",
    chunk_size: int | None = None,
) -> list[NormalizedResult]:
    """The article's normalized test: forward/backward magnitudes of whole matrices.

    For each ``(n_in, n_out)``, each iteration draws ``W`` with ``init`` and computes
    ``T_row = sum_i |sum_o W[i, o]|`` and ``T_col = sum_o |sum_i W[i, o]|``.

    Args:
      key: a PRNG key or an int seed (see :func:`standard_test`). A shape uses
        ``fold_in(fold_in(key, n_in), n_out)``.
      shapes: ``(n_in, n_out)`` pairs.
      iterations: iterations per shape.
      init: a flaxinit initializer.
      convention: ``"article"`` (``T_row / n_out``, ``T_col / n_in``, as the article's
        tables) or ``"per_node"`` (``T_col / n_out``, ``T_row / n_in``).
      chunk_size: iterations per device call (see :func:`standard_test`).

    Returns:
      A :class:`NormalizedResult` per shape, in order.

    Examples:
      >>> import flaxinit, mc
      >>> [r] = mc.normalized_test(0, [(15, 25)], 2048, flaxinit.letkeman_normalized())
      >>> round(r.expected_avg, 12), abs(r.avg - 1) < 4 * r.avg_se
      (1.0, True)
    """
    chunk_size = _check_chunk(chunk_size)
    return [task.run(chunk_size=chunk_size) for task in normalized_tasks(key, shapes, iterations, init, convention)]


def depth_test(
    key: jax.Array | int,
    widths: Sequence[int],
    activation: str | Callable[[jax.Array], jax.Array],
    init: Callable | Sequence[Callable],
    iterations: int,
    *,
    inputs: str = "ones",
    chunk_size: int | None = None,
) -> DepthResult:
    """Magnitudes forward and backward through a stack of layers (zero biases).

    ``widths = (w0, w1, ..., wL)`` builds ``L`` layers with kernels ``(w_{l-1}, w_l)``
    drawn by ``init``. The input is ones (or standard normal); the error entering at the
    output is ones. Reports, per layer, the mean |activation|, the mean |gradient| with
    respect to the layer's pre-activations (the vanishing/exploding picture), and the mean
    square of the pre-activations (the second moment an exact gain keeps at 1).

    Args:
      key: a PRNG key or an int seed (see :func:`standard_test`).
      widths: input width, then each layer's width.
      activation: ``"linear"``, any elementwise ``jax.nn`` activation by name (``"sigmoid"``,
        ``"tanh"``, ``"relu"``, ``"gelu"``, ...) or an elementwise callable; its derivative
        is taken by ``jax.grad``.
      init: a flaxinit initializer for every layer, or a sequence of one per layer (a
        first layer fed data rather than activations wants gain 1, for instance).
      iterations: independent networks to average over.
      inputs: ``"ones"`` or ``"gaussian"``.
      chunk_size: iterations per device call (see :func:`standard_test`).

    Returns:
      A :class:`DepthResult`.

    Examples:
      >>> import flaxinit, mc
      >>> r = mc.depth_test(0, [8, 8, 8], "linear", flaxinit.ones(), 4)
      >>> r.forward, r.backward
      ((8.0, 64.0), (8.0, 1.0))
    """
    chunk_size = _check_chunk(chunk_size)
    return depth_task(key, widths, activation, init, iterations, inputs).run(chunk_size=chunk_size)
