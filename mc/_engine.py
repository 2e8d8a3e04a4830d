"""The streaming, sharded, bit-reproducible Monte Carlo engine.

A run estimates the means of ``S`` per-iteration statistics over ``iterations``
independent iterations. How the bits stay the same for any number of devices and
processes and any ``chunk_size``:

* **Keys.** Iteration ``i`` lives in block ``i // BLOCK`` at offset ``i % BLOCK``. With a
  Philox key (:func:`flaxinit.prng.philox_key`, the default for int seeds) the iterations
  come in *groups* of ``G`` (a power of two the task fixes, 1 unless its initializer can
  draw a stack of kernels at once), and group ``i // G`` draws from
  ``substream(key, i - i % G)``: no hash, the Philox stream words XOR the index. Any
  other key (threefry, ``G = 1``) gives iteration ``i`` the key
  ``fold_in(fold_in(key, block), offset)``. Either way a pure function of ``(key, i)``.
* **One compiled statistic.** A device evaluates a fixed number of iterations at once
  (the *chunk*, set by the statistic's memory and the backend, never by ``chunk_size``,
  the work left or the device count), so the statistic is always compiled for the same
  batch shape. This matters: XLA may fuse a multiply into the add that follows (one
  rounding instead of two) in one vectorized layout and not in another.
* **Within a block** the ``BLOCK`` values (iterations past the end are zeros), and then
  their squared deviations from the block mean, are materialized and summed by
  :func:`tree_sum`, a pairwise tree of elementwise additions whose order is spelled out,
  so a block's sums depend only on the block's values (no product is fused into them).
  Statistics sum their own terms with :func:`tree_sum` too, which materializes its input
  for the same reason.
* **Across blocks** the float32 block sums (and sums of squared deviations from the
  block mean) are added *exactly*, as Python integers in units of ``2**-149`` (every
  float32 is an integer multiple of that) and exact rationals. Exact addition is
  associative, so the order chunks and devices finish in cannot matter, and no
  precision is lost however many iterations run: the only rounding is float32's
  within one block (relative ``~1e-7``), then one correctly rounded division at the end.

The blocks of a device call are laid out along a one-axis ``jax.sharding.Mesh`` over
``jax.devices()`` (every process's devices after ``jax.distributed.initialize()``) with
``shard_map``; each device runs its share chunk by chunk (``lax.map``), so memory is set
by the chunk, not by ``iterations``, and only ``2 * S`` floats per block leave the device:
one all-gather inside the kernel gives every device, so every process, every block's
results, and every process adds them in the same exact way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from flaxinit.prng import is_philox, substream

#: Iterations per block: the unit of key derivation and of in-device summation.
BLOCK = 1024
#: Default working set of one chunk per device, on CPUs and on accelerators.
CPU_CHUNK_BYTES = 2 * 2**20
ACCELERATOR_CHUNK_BYTES = 512 * 2**20
#: Work per device call, in bytes of per-iteration memory (about a second on a CPU core).
CALL_BYTES = 2**30
#: Most blocks in one run: block ids are uint32, and the padding of a run's last call
#: (ids past the end, masked out) must not wrap around to live ids.
MAX_BLOCKS = 2**31
#: float32 values are integer multiples of 2**-149: the exact accumulators' unit.
_UNIT_EXP = 149

StatFn = Callable[..., jax.Array]  # (key[, data]) -> float32[G, S]: one group of iterations


def tree_sum(x: jax.Array, axis: int = 0, *, fused_levels: int = 2) -> jax.Array:
    """Sums ``x`` along ``axis`` by a pairwise tree of elementwise additions.

    The result depends only on the values along ``axis``, never on the other axes' sizes,
    the surrounding program or the backend's reduction strategy: the summation order is
    spelled out, and ``x`` is materialized first (an optimization barrier), so no product
    that makes a term is fused into an addition. XLA's CPU backend always allows fused
    multiply-adds, and whether it forms one (one rounding instead of two) depends on how it
    lays out the fused loop: with jax 0.12, the same statistic summed directly gave other
    last bits in a one-device program than in a three- or four-device one. Materializing
    the terms cost nothing measurable in the engine's tests.

    With the axis padded by zeros to a power of two ``P``, level one adds
    ``x[i] + x[i + P/2]``, level two does the same to the result, and so on.
    ``fused_levels`` levels at a time are written as one expression of ``2**fused_levels``
    slices, which XLA fuses into one loop (the same additions in the same order; an absent
    zero term is skipped, which can only change the sign of a zero), so every choice gives
    the same bits. It is a speed knob: two levels suit a sum of small rows (the depth test's
    matrix-vector products, several times slower with five); five suit sums over large
    drawn arrays (the normalized test, several times faster with five).

    Examples:
      >>> import jax.numpy as jnp
      >>> float(tree_sum(jnp.arange(5.0)))
      10.0
    """
    axis = axis % x.ndim
    size = x.shape[axis]
    x = jax.lax.optimization_barrier(x)  # the terms stored before any is added: no fused multiply-add
    if size == 0:
        return jnp.zeros(x.shape[:axis] + x.shape[axis + 1 :], x.dtype)
    padded = 1 << (size - 1).bit_length()
    while padded > 1:
        levels = min(fused_levels, padded.bit_length() - 1)
        stride = padded >> levels
        # part j holds x[j * stride: (j + 1) * stride] along the axis; parts past the end are absent zeros
        parts = []
        for j in range(1 << levels):
            start = j * stride
            if start >= size:
                parts.append(None)
                continue
            part = jax.lax.slice_in_dim(x, start, min(start + stride, size), axis=axis)
            if start + stride > size:  # the one part the end cuts: padded with zeros
                shape = list(x.shape)
                shape[axis] = start + stride - size
                part = jnp.concatenate([part, jnp.zeros(shape, x.dtype)], axis=axis)
            parts.append(part)
        while len(parts) > 1:
            half = len(parts) // 2
            pairs = zip(parts[:half], parts[half:], strict=True)
            parts = [a if b is None else b if a is None else a + b for a, b in pairs]
        x, size, padded = parts[0], stride, stride
    return jnp.squeeze(x, axis)


@dataclasses.dataclass
class Accumulator:
    """Exact running moments of a run; everything needed to resume it.

    Per statistic ``s``: ``sums[s]`` is the sum over completed blocks of the block sums,
    and ``m2s[s]`` the sum of the blocks' sums of squared deviations from their own means
    (as integers in units of ``2**-149``); ``between[s]`` is the exact rational
    ``sum_b S_b^2 / n_b`` (same units squared). The total sum of squared deviations is
    then ``m2 + between - S^2 / N`` (Chan et al.'s pairwise update, done exactly), so the
    variance does not suffer the cancellation of ``E[x^2] - E[x]^2``.
    """

    iterations: int
    num_stats: int
    blocks_done: int = 0
    sums: list[int] = dataclasses.field(default_factory=list)
    m2s: list[int] = dataclasses.field(default_factory=list)
    between: list[Fraction] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sums:
            self.sums = [0] * self.num_stats
            self.m2s = [0] * self.num_stats
            self.between = [Fraction(0)] * self.num_stats

    @property
    def total_blocks(self) -> int:
        return _ceil_div(self.iterations, BLOCK)

    @property
    def done(self) -> bool:
        return self.blocks_done >= self.total_blocks

    @property
    def iterations_done(self) -> int:
        return min(self.blocks_done * BLOCK, self.iterations)

    def block_sizes(self, first: int, count: int) -> list[int]:
        """Live iterations in blocks ``first .. first + count - 1``."""
        return [max(0, min(BLOCK, self.iterations - b * BLOCK)) for b in range(first, first + count)]

    def add(self, block_sums: np.ndarray, block_m2s: np.ndarray) -> None:
        """Adds the float32 sums and M2s ``[blocks, S]`` of the next blocks exactly."""
        sizes = self.block_sizes(self.blocks_done, block_sums.shape[0])
        sums, m2s, between = list(self.sums), list(self.m2s), list(self.between)
        for s in range(self.num_stats):
            block_totals = _exact_ints(block_sums[:, s])
            sums[s] += sum(block_totals)
            m2s[s] += sum(_exact_ints(block_m2s[:, s]))
            full = sum(t * t for t, n in zip(block_totals, sizes, strict=True) if n == BLOCK)
            partial = sum(Fraction(t * t, n) for t, n in zip(block_totals, sizes, strict=True) if 0 < n < BLOCK)
            between[s] += Fraction(full, BLOCK) + partial
        self.sums, self.m2s, self.between, self.blocks_done = sums, m2s, between, self.blocks_done + len(sizes)

    def moments(self) -> tuple[list[float], list[float]]:
        """Means and standard errors of the means, over the iterations done."""
        n = self.iterations_done
        if n == 0:
            raise ValueError("no iterations have been run")
        unit = Fraction(1, 1 << _UNIT_EXP)
        means, ses = [], []
        for total, m2, between in zip(self.sums, self.m2s, self.between, strict=True):
            means.append(float(Fraction(total, n) * unit))
            if n > 1:
                squared_deviations = m2 * unit + (between - Fraction(total * total, n)) * unit * unit
                ses.append(math.sqrt(max(float(squared_deviations / (n - 1)), 0.0) / n))
            else:
                ses.append(math.nan)
        return means, ses

    def to_dict(self) -> dict[str, Any]:
        # the integers can exceed JSON's safe range: store them as strings
        return {
            "iterations": self.iterations,
            "num_stats": self.num_stats,
            "blocks_done": self.blocks_done,
            "sums": [str(v) for v in self.sums],
            "m2s": [str(v) for v in self.m2s],
            "between": [str(v) for v in self.between],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Accumulator:
        return cls(
            iterations=int(d["iterations"]),
            num_stats=int(d["num_stats"]),
            blocks_done=int(d["blocks_done"]),
            sums=[int(v) for v in d["sums"]],
            m2s=[int(v) for v in d["m2s"]],
            between=[Fraction(v) for v in d["between"]],
        )


def _with_data(stat_fn: StatFn, data: Any, key: jax.Array) -> jax.Array:
    return stat_fn(key, data)


def _exact_ints(values: np.ndarray) -> list[int]:
    """float32 values as exact integers in units of 2**-149."""
    scaled = np.ldexp(values.astype(np.float64), _UNIT_EXP)  # exact: 24-bit mantissas
    if not np.all(np.isfinite(scaled)):
        raise FloatingPointError("a Monte Carlo statistic overflowed float32 or was NaN")
    return [int(v) for v in scaled.tolist()]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("blocks",))


def default_chunk_bytes() -> int:
    """Working-set budget of one vmapped chunk, per device.

    Small on CPUs, where a chunk that stays in cache runs several times faster than a
    large one; large on accelerators, which need wide batches to fill the device.
    """
    return CPU_CHUNK_BYTES if jax.default_backend() == "cpu" else ACCELERATOR_CHUNK_BYTES


class Engine:
    """Compiles one statistic into a sharded block-sum kernel and streams it.

    A *chunk* is the set of iterations one device evaluates at once (vmapped): it sets the
    memory. It is a whole number of blocks, or, for statistics too large for a block at
    once (a deep network), a power-of-two fraction of one block, whose iterations then run
    in sub-chunks (``lax.fori_loop``) before the block's sums. A *call* is one dispatch to
    the devices: ``shard_map`` gives each device its share of the call's blocks, which it
    runs chunk after chunk with ``lax.map``; only the per-block sums come back. Calls are
    sized for about a second of work (or by ``chunk_size``), so progress is reported and
    Ctrl-C is honoured at that granularity.

    The chunk is fixed by the statistic's memory and the backend (or by ``at_once``), never
    by ``chunk_size``, the work left or the device count: the statistic is compiled for one
    batch shape, so every run of it gives the same bits. This matters because XLA fuses a
    multiply into a following add (a fused multiply-add, rounded once) or not depending on
    how it vectorizes the fused loop, which depends on the batch shape: even the article's
    tests (``unit * scale``, then summed) would differ in their last bits between chunk
    shapes.

    Compiled kernels are kept on the engine (one per chunking and key type), so running it
    again, with any key of the same type (and data of the same shapes), does not recompile.

    Args:
      stat_fn: ``key -> float32[G, S]``: the statistics of ``G`` iterations from one key
        (traced, vmapped); ``(key, data) -> float32[G, S]`` when runs pass ``data`` (arrays
        every iteration reads, an argument of the compiled kernel rather than a constant in
        it, so that other values of the same shapes run the same program).
      num_stats: ``S``.
      bytes_per_iteration: device memory one iteration needs (for default chunking).
      group: ``G``, a power of two up to ``BLOCK``; above 1 only for Philox keys (a group
        shares a key, which only the Philox layout provides without changing the bits of
        other key types).
      at_once: if given, the iterations a device evaluates at once (a power of two up to
        ``BLOCK``, or a multiple of ``BLOCK``) instead of the memory budget's choice.
    """

    def __init__(
        self, stat_fn: StatFn, num_stats: int, bytes_per_iteration: int, group: int = 1, at_once: int | None = None
    ):
        if group < 1 or group > BLOCK or group & (group - 1):
            raise ValueError(f"group must be a power of two from 1 to {BLOCK}, got {group}")
        self.stat_fn = stat_fn
        self.num_stats = num_stats
        self.bytes_per_iteration = max(1, bytes_per_iteration)
        self.group = group
        self.at_once = at_once
        self.mesh = _mesh()
        self.num_devices = self.mesh.devices.size
        self._kernels: dict[tuple[int, int, int], Callable] = {}

    def _group_keys(self, key: jax.Array, block_id: jax.Array) -> jax.Array:
        """The keys of a block's groups (of its iterations, for group 1)."""
        if is_philox(key):  # the substream of each group's first iteration: no hash
            shift = BLOCK.bit_length() - 1
            group_offsets = jnp.arange(0, BLOCK, self.group, dtype=jnp.uint32)
            return substream(key, ((block_id << shift) | group_offsets, block_id >> (32 - shift)))
        if self.group != 1:
            raise TypeError("iterations share a key (group > 1) only with Philox keys")
        block_key = jax.random.fold_in(key, block_id)
        return jax.vmap(lambda j: jax.random.fold_in(block_key, j))(jnp.arange(BLOCK, dtype=jnp.uint32))

    def _sub_chunks(self, stat: StatFn, keys: jax.Array, count: jax.Array, sub: int) -> jax.Array:
        """The block's values, ``sub`` iterations at a time, up to the last live one."""
        keys = keys.reshape(BLOCK // sub, sub // self.group, *keys.shape[1:])

        def step(i, values):
            chunk = jax.vmap(stat)(keys[i]).reshape(sub, self.num_stats).astype(jnp.float32)
            return jax.lax.dynamic_update_slice_in_dim(values, chunk, i * sub, axis=0)

        steps = (count.astype(jnp.int32) + (sub - 1)) // sub  # a partial block skips its dead sub-chunks
        return jax.lax.fori_loop(0, steps, step, jnp.zeros((BLOCK, self.num_stats), jnp.float32))

    def _one_block(self, key, block_id, full_blocks, remainder, data, sub: int) -> tuple[jax.Array, jax.Array]:
        """A block's float32 sum of each statistic and sum of squared deviations from its mean."""
        keys = self._group_keys(key, block_id)
        count = jnp.where(block_id < full_blocks, BLOCK, jnp.where(block_id == full_blocks, remainder, 0))
        stat = self.stat_fn if data is None else functools.partial(_with_data, self.stat_fn, data)
        if sub == BLOCK:
            values = jax.vmap(stat)(keys)
        else:  # a block too large to evaluate at once: `sub` iterations at a time
            values = self._sub_chunks(stat, keys, count, sub)
        # materialized once: left to itself, XLA fuses the whole draw into each of the
        # block's two sums below and computes it twice (measured: about half the speed)
        values = jax.lax.optimization_barrier(values.reshape(BLOCK, self.num_stats).astype(jnp.float32))
        offsets = jnp.arange(BLOCK, dtype=jnp.uint32)
        live = ((block_id < full_blocks) | ((block_id == full_blocks) & (offsets < remainder)))[:, None]
        values = jnp.where(live, values, 0.0)
        total = tree_sum(values, 0)
        mean = total / jnp.maximum(count.astype(jnp.float32), 1.0)
        deviations = jnp.where(live, values - mean, 0.0)
        return total, tree_sum(deviations * deviations, 0)  # tree_sum stores the squares first

    def _device_blocks(self, key, first_block, full_blocks, remainder, data, *, chunk_blocks, sub, per_device):
        """One device's share of a call (inside ``shard_map``), all-gathered."""
        # this device's blocks: a contiguous run of ``per_device`` ids from the call's first
        start = first_block + jax.lax.axis_index("blocks").astype(jnp.uint32) * jnp.uint32(per_device)
        block_ids = start + jnp.arange(per_device, dtype=jnp.uint32)
        sums, m2s = jax.lax.map(
            lambda b: self._one_block(key, b, full_blocks, remainder, data, sub), block_ids, batch_size=chunk_blocks
        )
        # every device (so every process) ends with every block's sums: one small all-gather
        return jax.lax.all_gather(sums, "blocks", tiled=True), jax.lax.all_gather(m2s, "blocks", tiled=True)

    def _kernel(self, chunk_blocks: int, sub: int, per_device: int) -> Callable:
        if (chunk_blocks, sub, per_device) not in self._kernels:
            replicated = PartitionSpec()
            fn = functools.partial(self._device_blocks, chunk_blocks=chunk_blocks, sub=sub, per_device=per_device)
            mapped = jax.shard_map(
                fn,
                mesh=self.mesh,
                in_specs=(replicated,) * 5,
                out_specs=(replicated, replicated),
                # the outputs are all-gathered, so replicated; this jax cannot infer that for all_gather
                check_vma=False,
            )
            # jit keeps one executable per key type (its dtype) under the same function
            self._kernels[chunk_blocks, sub, per_device] = jax.jit(mapped)
        return self._kernels[chunk_blocks, sub, per_device]

    def chunking(self) -> tuple[int, int]:
        """``(blocks, iterations)`` a device evaluates at once: whole blocks (``iterations = BLOCK``),
        or one block in power-of-two sub-chunks of at least one group; from ``at_once`` or the
        memory budget (never from ``chunk_size`` or the device count)."""
        if self.at_once is not None:
            return (self.at_once // BLOCK, BLOCK) if self.at_once >= BLOCK else (1, self.at_once)
        at_once = max(1, default_chunk_bytes() // self.bytes_per_iteration)
        if at_once >= 2 * BLOCK or (at_once >= BLOCK and self.group > BLOCK // 2):
            return at_once // BLOCK, BLOCK
        if at_once >= BLOCK:  # measured: one whole block per lax.map step runs at about 0.6x of half blocks
            return 1, BLOCK // 2
        # the largest power of two <= at_once (it divides BLOCK), and at least one group
        return 1, max(self.group, 1 << (at_once.bit_length() - 1))

    def run(
        self,
        key: jax.Array,
        acc: Accumulator,
        chunk_size: int | None = None,
        on_chunk: Callable[[Accumulator], None] | None = None,
        data: Any = None,
    ) -> Accumulator:
        """Runs the remaining blocks of ``acc`` (updated in place, also returned); ``data``:
        the arrays ``stat_fn`` reads besides its key (a pytree, replicated on every device).

        ``chunk_size`` is the iterations each device runs per call (rounded up to whole
        chunks); by default, about ``CALL_BYTES`` of work. It sets how often progress is
        reported and Ctrl-C is honoured, never the bits.

        ``on_chunk(acc)`` is called after every call's blocks are added; an exception
        raised there (or a ``KeyboardInterrupt``) leaves ``acc`` holding every completed
        call, so the run can be resumed from it with the same key.
        """
        total = acc.total_blocks
        if total > MAX_BLOCKS:
            raise ValueError(f"iterations must be at most {MAX_BLOCKS * BLOCK}, got {acc.iterations}")
        full_blocks = jnp.uint32(acc.iterations // BLOCK)
        remainder = jnp.uint32(acc.iterations % BLOCK)
        chunk, sub = self.chunking()
        if chunk_size is None:
            per_device = max(chunk, CALL_BYTES // (self.bytes_per_iteration * BLOCK))
        else:
            per_device = _ceil_div(_ceil_div(chunk_size, BLOCK), chunk) * chunk
        per_call = per_device * self.num_devices

        # equal calls, each a whole number of chunks per device. The chunk itself never adapts
        # to the work left or to the device count (a short run computes, then drops, padding
        # blocks): the statistic is then always compiled for the same batch shape, and XLA
        # vectorizes products and transcendental functions the same way in every run.
        remaining = total - acc.blocks_done
        calls = max(1, _ceil_div(remaining, per_call))
        count = _ceil_div(_ceil_div(remaining, calls), chunk * self.num_devices) * chunk * self.num_devices
        kernel = self._kernel(chunk, sub, count // self.num_devices)

        def launch(start: int):
            return start, kernel(key, np.uint32(start), full_blocks, remainder, data)

        pending = None if acc.done else launch(acc.blocks_done)
        while pending is not None:
            start, (sums, m2s) = pending
            # dispatch the next call before waiting on this one's results
            pending = launch(start + count) if start + count < total else None
            take = min(count, total - start)
            acc.add(np.asarray(sums)[:take], np.asarray(m2s)[:take])
            if on_chunk is not None:
                on_chunk(acc)
        return acc
