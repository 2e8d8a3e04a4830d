"""The article's magnitude tests (SPEC section 3) and the depth test, on the engine.

Every iteration draws its weights by calling the given flaxinit initializer with its
own key, so the Monte Carlo checks the shipped code. Sums inside an iteration use
:func:`mc._engine.tree_sum` so that results are bit-identical for any chunking.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp

import flaxinit
from flaxinit.magnitude import CONVENTIONS, normalized_passes
from flaxinit.tooling import check_choice, check_int, check_key
from mc._engine import Accumulator, Engine, tree_sum
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
    """

    label: str
    engine: Engine
    key: jax.Array
    iterations: int
    finalize: Callable[[Accumulator], R]

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
        return self.finalize(self.engine.run(self.key, acc, chunk_size, on_chunk))


def standard_tasks(key, sizes, iterations, init, inputs="ones") -> list[Task[StandardResult]]:
    """The tasks behind :func:`standard_test` (same arguments), one per size, not yet run."""
    key, init = check_key(key, seeds=True), _check_init(init)
    iterations = check_int(iterations, "iterations")
    check_choice(inputs, "inputs", INPUTS)
    sizes = [check_int(n, "each size") for n in sizes]
    if not sizes:
        raise ValueError("sizes must not be empty")
    return [_standard_task(key, n, iterations, init, inputs) for n in sizes]


def _standard_task(key, n, iterations, init, inputs) -> Task[StandardResult]:
    shape = (n, 1)

    def stat(k):
        if inputs == "ones":
            z = tree_sum(init(k, shape, jnp.float32)[:, 0])
        else:
            k_w, k_x = jax.random.split(k)
            w = init(k_w, shape, jnp.float32)[:, 0]
            if inputs == "one_hot":
                z = w[jax.random.randint(k_x, (), 0, n)]
            else:
                x = jax.random.normal(k_x, (n,), jnp.float32)
                x = jax.nn.softmax(x) if inputs == "softmax" else x
                z = tree_sum(x * w)
        return jnp.abs(z)[None]

    if inputs == "ones":
        expected = _abs_sum_expectation(init, shape, n)
    elif inputs == "one_hot":
        expected = _abs_sum_expectation(init, shape, 1)
    else:
        expected = None

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
        )

    engine = Engine(stat, 1, bytes_per_iteration=64 + 16 * n)  # keys and intermediates
    return Task(f"standard n={n}", engine, jax.random.fold_in(key, n), iterations, finalize)


def normalized_tasks(key, shapes, iterations, init, convention="article") -> list[Task[NormalizedResult]]:
    """The tasks behind :func:`normalized_test` (same arguments), one per shape, not yet run."""
    key, init = check_key(key, seeds=True), _check_init(init)
    iterations = check_int(iterations, "iterations")
    check_choice(convention, "convention", CONVENTIONS)
    return [_normalized_task(key, shape, iterations, init, convention) for shape in _check_shapes(shapes)]


def _normalized_task(key, shape, iterations, init, convention) -> Task[NormalizedResult]:
    n_in, n_out = shape

    def stat(k):
        w = init(k, shape, jnp.float32)
        t_row = tree_sum(jnp.abs(tree_sum(w, 1)))  # each input node's outgoing sum
        t_col = tree_sum(jnp.abs(tree_sum(w, 0)))  # each output node's incoming sum
        return jnp.stack(normalized_passes(t_row, t_col, n_in, n_out, convention))

    e_out = _abs_sum_expectation(init, shape, n_out)  # E|sum over a row|
    e_in = _abs_sum_expectation(init, shape, n_in)  # E|sum over a column|
    if e_out is None or e_in is None:
        expected = (None, None, None)
    else:
        expected = normalized_passes(n_in * e_out, n_out * e_in, n_in, n_out, convention)

    def finalize(acc: Accumulator) -> NormalizedResult:
        (f, b, a), (f_se, b_se, a_se) = acc.moments()
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
        )

    engine = Engine(stat, 3, bytes_per_iteration=64 + 16 * n_in * n_out)
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


def depth_task(key, widths, activation, init, iterations, inputs="ones") -> Task[DepthResult]:
    """The task behind :func:`depth_test` (same arguments), not yet run."""
    key = check_key(key, seeds=True)
    iterations = check_int(iterations, "iterations")
    name, act = activation_function(activation)
    check_choice(inputs, "inputs", ("ones", "gaussian"))
    widths = tuple(check_int(w, "each width") for w in widths)
    if len(widths) < 2:
        raise ValueError(f"widths must list at least an input and one layer width, got {widths!r}")
    dact = jax.vmap(jax.grad(lambda z: act(z)))
    shapes = list(itertools.pairwise(widths))
    depth = len(shapes)
    inits = _layer_inits(init, depth)

    def stat(k):
        k_w, k_x = jax.random.split(k)
        kernels = [
            i(jax.random.fold_in(k_w, layer), s, jnp.float32)
            for layer, (i, s) in enumerate(zip(inits, shapes, strict=True))
        ]
        a = jnp.ones(widths[0]) if inputs == "ones" else jax.random.normal(k_x, (widths[0],))
        pre, fwd, square = [], [], []
        for w in kernels:
            z = tree_sum(a[:, None] * w, 0)
            a = act(z)
            pre.append(z)
            fwd.append(tree_sum(jnp.abs(a)) / a.shape[0])
            square.append(tree_sum(z * z) / z.shape[0])
        delta = dact(pre[-1])  # all-ones error at the output
        bwd = [tree_sum(jnp.abs(delta)) / delta.shape[0]]
        for layer in range(depth - 1, 0, -1):
            delta = tree_sum(kernels[layer] * delta[None, :], 1) * dact(pre[layer - 1])
            bwd.append(tree_sum(jnp.abs(delta)) / delta.shape[0])
        return jnp.stack(fwd + bwd[::-1] + square)

    def finalize(acc: Accumulator) -> DepthResult:
        means, ses = acc.moments()
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
        )

    per_iteration = 64 + 16 * sum(a * b for a, b in shapes)
    engine = Engine(stat, 3 * depth, bytes_per_iteration=per_iteration)
    return Task(f"depth {name}", engine, key, iterations, finalize)


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
      key: a PRNG key (or an int seed). Size ``n`` uses ``fold_in(key, n)``.
      sizes: layer sizes ``n``.
      iterations: iterations per size.
      init: a flaxinit initializer (any ``init(key, shape, dtype)`` works; the exact
        expectation is known for flaxinit's uniform, normal and constant schemes).
      chunk_size: iterations evaluated at once (vmapped), over all devices: it sets the
        memory a device needs, not the results. Default: from a per-device budget of
        ``mc._engine.CPU_CHUNK_BYTES`` (2 MiB, cache-sized) on CPUs and
        ``ACCELERATOR_CHUNK_BYTES`` (512 MiB) on accelerators. Each device call runs several
        chunks (about ``CALL_BYTES`` of work). Results are bit-identical for every chunk
        size, device count and process count.
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
      key: a PRNG key (or an int seed). A shape uses ``fold_in(fold_in(key, n_in), n_out)``.
      shapes: ``(n_in, n_out)`` pairs.
      iterations: iterations per shape.
      init: a flaxinit initializer.
      convention: ``"article"`` (``T_row / n_out``, ``T_col / n_in``, as the article's
        tables) or ``"per_node"`` (``T_col / n_out``, ``T_row / n_in``).
      chunk_size: iterations evaluated at once (see :func:`standard_test`).

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
      key: a PRNG key (or an int seed).
      widths: input width, then each layer's width.
      activation: ``"linear"``, any elementwise ``jax.nn`` activation by name (``"sigmoid"``,
        ``"tanh"``, ``"relu"``, ``"gelu"``, ...) or an elementwise callable; its derivative
        is taken by ``jax.grad``.
      init: a flaxinit initializer for every layer, or a sequence of one per layer (a
        first layer fed data rather than activations wants gain 1, for instance).
      iterations: independent networks to average over.
      inputs: ``"ones"`` or ``"gaussian"``.
      chunk_size: iterations evaluated at once (see :func:`standard_test`).

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
