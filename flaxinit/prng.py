"""Philox4x32-10 as a JAX key type: every ``jax.random`` sampler, so every initializer, on it.

Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2,
3", SC'11; the generator behind cuRAND's and Random123's ``philox4x32``) maps a 128-bit
counter and a 64-bit key to four 32-bit words with ten rounds of two 32x32->64 multiplies,
and passes TestU01's BigCrush. It is counter-based, so a draw is a pure function of (key,
counter): nothing is carried from one draw to the next and any part of a stream can be
computed on any device.

A key of this module (:data:`PHILOX`, made by :func:`philox_key`) holds four words
``(k0, k1, s0, s1)``: the Philox key ``(k0, k1)`` and a *stream* ``(s0, s1)``. The
counter of block ``j`` of a draw is ``(j, 0, s0, s1)``, and the block's four words
are the next four 32-bit values of the draw: a draw of ``m`` values is a prefix of a longer
one, and every word is used (jax's own ``"philox4x32"`` impl XORs a block's four words into
one 32-bit value). The counter's second word tells apart what a counter is for, so a
derived key is never a draw's bits:

============================  ====================================================
counter                       used for
============================  ====================================================
``(j, 0, s0, s1)``             ``random_bits``: block ``j < 2**32`` of a draw
``(j, 0x80000000, s0, s1)``    ``split``: the ``j``-th new key (all four words)
``(d, 0xC0000000, s0, s1)``    ``fold_in(key, d)``: the new key (all four words)
============================  ====================================================

A seed ``s`` (an integer, taken modulo ``2**64``) becomes the key
``philox4x32((s_lo, s_hi, 0, 0), SEED_KEY)``. :func:`substream` gives the keys of
independent streams under one Philox key without hashing (the stream words XOR an
index): the Monte Carlo engine's per-iteration keys.

Examples:
  >>> import jax, flaxinit
  >>> from flaxinit.prng import philox_key
  >>> key = philox_key(0)
  >>> flaxinit.xavier_standard()(key, (784, 128)).shape
  (784, 128)
  >>> jax.random.key_impl(key)
  PRNGSpec('flaxinit.philox4x32_10')
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = ["PHILOX", "SEED_KEY", "is_philox", "philox4x32", "philox_key", "substream"]

_M0, _M1 = np.uint32(0xD2511F53), np.uint32(0xCD9E8D57)  # the round multipliers
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # the key schedule's Weyl increments
_ROUNDS = 10
_SPLIT, _FOLD_IN = np.uint32(0x80000000), np.uint32(0xC0000000)
_STREAM_TAG = np.uint32(0x80000000)  # on s1 of every substream, so none is the key's own stream
#: The Philox key that turns a seed (as a counter) into a key: the first 64 bits of the
#: fractional part of sqrt(2), SHA-2's first constant.
SEED_KEY = (0x6A09E667, 0xF3BCC908)
#: Blocks per row of a small draw's grid, and the largest draw laid out as a grid (values):
#: layout choices of :func:`_stream`, which never change the values.
_COLUMNS = 32
_GRID_MAX = 2**13
#: Blocks one draw may use: their index is the counter's first word.
_MAX_BLOCKS = 2**32


def _mulhi(a: np.uint32, x: jax.Array) -> jax.Array:
    """The high word of the 64-bit product ``a * x``: one widened multiply.

    Written out rather than ``jax.lax.mulhi``, which this jax lowers to an op that fails to
    compile inside ``shard_map`` over several devices; the product needs 64-bit integers
    for a moment, whatever ``jax_enable_x64`` says.
    """
    with jax.enable_x64(True):
        product = jax.lax.convert_element_type(x, jnp.uint64) * np.uint64(a)
        return jax.lax.convert_element_type(product >> np.uint64(32), jnp.uint32)


def _rounds(x0, x1, x2, x3, k0, k1):
    """Philox4x32-10 on uint32 arrays (broadcast together): the four output words."""
    x0, x1, x2, x3, k0, k1 = (jnp.asarray(v, jnp.uint32) for v in (x0, x1, x2, x3, k0, k1))
    for r in range(_ROUNDS):
        if r:
            k0, k1 = k0 + _W0, k1 + _W1
        hi0, lo0 = _mulhi(_M0, x0), _M0 * x0
        hi1, lo1 = _mulhi(_M1, x2), _M1 * x2
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return x0, x1, x2, x3


def philox4x32(counter: ArrayLike, key: ArrayLike) -> jax.Array:
    """The Philox4x32-10 block function: ``uint32[..., 4]`` counters under a ``uint32[2]`` key.

    The bijection behind :data:`PHILOX`, exposed so its output can be checked against
    Random123's published known-answer vectors (``kat_vectors``) or any other
    implementation. ``counter`` and ``key`` broadcast against each other over the leading
    axes; each round is ``(x0, x1, x2, x3) <- (hi(M1 x2) ^ x1 ^ k0, lo(M1 x2),
    hi(M0 x0) ^ x3 ^ k1, lo(M0 x0))`` with the key bumped by ``(0x9E3779B9, 0xBB67AE85)``
    between rounds.

    Args:
      counter: unsigned 32-bit integers, last axis 4 (words ``x0 .. x3``).
      key: unsigned 32-bit integers, last axis 2 (words ``k0, k1``).

    Returns:
      ``uint32[..., 4]``: the four output words of each counter.

    Examples:
      >>> import numpy as np
      >>> from flaxinit.prng import philox4x32
      >>> out = philox4x32(np.zeros(4, np.uint32), np.zeros(2, np.uint32))
      >>> [f"{int(w):08x}" for w in out]
      ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']
    """
    counter, key = _words(counter, "counter", 4), _words(key, "key", 2)
    out = _rounds(*(counter[..., i] for i in range(4)), key[..., 0], key[..., 1])
    return jnp.stack(out, axis=-1)


def _words(x: ArrayLike, name: str, count: int) -> jax.Array:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() > 0xFFFFFFFF)):
            raise TypeError(f"{name} must hold unsigned 32-bit integers, got {x!r:.80}")
        x = x.astype(np.uint32)
    elif np.dtype(dtype) != np.uint32:
        raise TypeError(f"{name} must have dtype uint32, got {dtype}")
    if np.ndim(x) < 1 or np.shape(x)[-1] != count:
        raise ValueError(f"{name} must have a last axis of {count} words, got shape {np.shape(x)}")
    return jnp.asarray(x, jnp.uint32)


# --- the key type ------------------------------------------------------------------------------


def _seed(seed: jax.Array) -> jax.Array:
    """A key from an integer scalar, as a 64-bit two's-complement value."""
    if seed.shape:
        raise TypeError(f"a Philox seed must be a scalar, got shape {seed.shape}")
    if not jnp.issubdtype(seed.dtype, jnp.integer):
        raise TypeError(f"a Philox seed must be an integer, got dtype {seed.dtype}")
    if jnp.iinfo(seed.dtype).bits == 64:
        lo = jax.lax.convert_element_type(seed & 0xFFFFFFFF, jnp.uint32)
        hi = jax.lax.convert_element_type(jax.lax.shift_right_logical(seed, jnp.asarray(32, seed.dtype)), jnp.uint32)
    else:
        lo = jax.lax.convert_element_type(seed, jnp.uint32)  # modular
        negative = seed < 0 if jnp.issubdtype(seed.dtype, jnp.signedinteger) else False
        hi = jnp.where(negative, np.uint32(0xFFFFFFFF), np.uint32(0))
    return _seed_words(lo, hi)


def _seed_words(lo, hi) -> jax.Array:
    zero = np.uint32(0)
    return jnp.stack(_rounds(lo, hi, zero, zero, np.uint32(SEED_KEY[0]), np.uint32(SEED_KEY[1])))


def _derive(key: jax.Array, word0: jax.Array, tag: np.uint32) -> jax.Array:
    """New keys ``[..., 4]``: the blocks of counters ``(word0, tag, s0, s1)`` under ``key``."""
    return jnp.stack(_rounds(word0, tag, key[2], key[3], key[0], key[1]), axis=-1)


def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    count = math.prod(shape)
    if count > 2**32:
        raise ValueError(f"a Philox key splits into at most 2**32 keys, got shape {shape}")
    indices = jax.lax.iota(jnp.uint32, count)
    return _derive(key, indices, _SPLIT).reshape(*shape, 4)


def _fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
    return _derive(key, jnp.asarray(data, jnp.uint32), _FOLD_IN)


def _grid(key: jax.Array, first: int, rows: int, columns: int) -> jax.Array:
    """Values ``4 first .. 4 (first + rows * columns) - 1``: blocks as a grid, words interleaved."""
    index = jax.lax.iota(jnp.uint32, rows * columns).reshape(rows, columns) + np.uint32(first)
    return jnp.stack(_rounds(index, np.uint32(0), key[2], key[3], key[0], key[1]), axis=-1).reshape(-1)


def _select(key: jax.Array, first: int, count: int) -> jax.Array:
    """Values ``first .. first + count - 1``, each computing its own block and keeping its word."""
    v = jax.lax.iota(jnp.uint32, count) + np.uint32(first)
    out = _rounds(v >> 2, np.uint32(0), key[2], key[3], key[0], key[1])
    word = v & 3
    return jnp.where(word == 0, out[0], jnp.where(word == 1, out[1], jnp.where(word == 2, out[2], out[3])))


def _stream(key: jax.Array, words: int) -> jax.Array:
    """The first ``words`` values of ``key``'s stream: block ``j`` gives values ``4j .. 4j + 3``.

    Two layouts of the same values, chosen by size for XLA's CPU backend (measured; the
    values never depend on it): a draw of up to ``_GRID_MAX`` values computes each block once
    and interleaves its words from a grid of rows of ``_COLUMNS`` blocks (fast under
    ``vmap``, as the Monte Carlo engine draws), a larger one lets every value compute its
    own block and keep its word (4x the arithmetic, but one elementwise loop that XLA
    vectorizes and fuses into the consumer: faster for big single draws).
    """
    if words > _GRID_MAX:
        return _select(key, 0, words)
    rows, rest = divmod(words, 4 * _COLUMNS)
    main = _grid(key, 0, rows, _COLUMNS)
    if not rest:
        return main
    tail = _select(key, rows * 4 * _COLUMNS, rest)  # a grid sliced to size compiles slowly
    return jnp.concatenate([main, tail]) if rows else tail


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    if bit_width not in (8, 16, 32, 64):
        raise TypeError(f"Philox draws 8, 16, 32 or 64-bit values, got bit_width={bit_width}")
    count = math.prod(shape)
    words = -(-count * bit_width // 32)
    blocks = -(-words // 4)
    if blocks > _MAX_BLOCKS:
        raise ValueError(f"a Philox draw takes at most 2**32 blocks (2**34 32-bit values), got shape {shape}")
    stream = _stream(key, words)
    if bit_width == 32:
        return stream.reshape(shape)
    if bit_width == 64:
        pairs = jax.lax.convert_element_type(stream.reshape(-1, 2), jnp.uint64)
        return ((pairs[:, 0] << 32) | pairs[:, 1]).reshape(shape)
    per_word = 32 // bit_width
    shifts = jnp.arange(per_word, dtype=jnp.uint32) * bit_width
    pieces = (stream[:, None] >> shifts) & np.uint32((1 << bit_width) - 1)  # low-order piece first
    dtype = jnp.uint8 if bit_width == 8 else jnp.uint16
    return jax.lax.convert_element_type(pieces.reshape(-1)[:count], dtype).reshape(shape)


#: The Philox4x32-10 key type (pass it as ``impl=`` to ``jax.random.key``).
PHILOX = jax.extend.random.define_prng_impl(
    key_shape=(4,),
    seed=_seed,
    split=_split,
    random_bits=_random_bits,
    fold_in=_fold_in,
    name="flaxinit.philox4x32_10",
    tag="phx",
)


def philox_key(seed: int | ArrayLike) -> jax.Array:
    """A Philox4x32-10 key from an integer seed: ``jax.random.key(seed)``, faster to draw from.

    The key works everywhere a ``jax.random.key`` does: every ``jax.random`` sampler, so
    every flaxinit initializer and ``flax`` module init, draws from it (different bits from
    the default threefry key, the same distributions). It is the Monte Carlo engine's
    generator for int seeds; ``benchmarks/bench_mc.py`` measures it against threefry.

    Args:
      seed: an integer; Python ints are taken modulo ``2**64``, so every 64-bit seed
        (signed or not) gives its own key. An integer array scalar works too (traced or
        not), read as a 64-bit two's-complement value.

    Returns:
      A typed key (``dtype key<phx>``, shape ``()``).

    Examples:
      >>> import jax, flaxinit
      >>> from flaxinit.prng import philox_key
      >>> key = philox_key(42)
      >>> a, b = jax.random.split(key)
      >>> flaxinit.letkeman_standard()(a, (3, 2)).dtype
      dtype('float32')
      >>> bool((philox_key(-1) == philox_key(2**64 - 1)).all())
      True
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        value = int(seed) % 2**64
        words = _seed_words(np.uint32(value & 0xFFFFFFFF), np.uint32(value >> 32))
        return jax.random.wrap_key_data(words, impl=PHILOX)
    if isinstance(seed, bool) or not hasattr(seed, "dtype"):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r:.80}")
    return jax.random.key(seed, impl=PHILOX)


def is_philox(key: Any) -> bool:
    """Whether ``key`` is a typed key (or array of keys) of :data:`PHILOX`."""
    dtype = getattr(key, "dtype", None)
    return (
        dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and jax.random.key_impl(key) == PHILOX
    )


def substream(key: jax.Array, index: jax.Array | Sequence[jax.Array]) -> jax.Array:
    """The key of stream ``index`` under ``key``'s Philox key: no hash, three integer ops.

    Stream ``index`` (a uint32 scalar or array, or a ``(lo, hi)`` pair of them for a 64-bit
    index below ``2**63``) reads counters ``(j, 0, s0 ^ lo, s1 ^ hi ^ 0x80000000)``:
    distinct indices read disjoint counters, none of them the counters of ``key``'s own
    draws, so the streams are as independent as Philox's outputs (the counter partition
    Random123 recommends for parallel streams). The Monte Carlo engine gives each
    iteration the substream of its index. The result has ``index``'s shape.

    Args:
      key: a :data:`PHILOX` key (shape ``()``).
      index: the stream's index.

    Returns:
      :data:`PHILOX` keys of ``index``'s shape.
    """
    if not is_philox(key):
        raise TypeError(f"key must be a Philox key from flaxinit.prng.philox_key, got {key!r:.80}")
    lo, hi = index if isinstance(index, tuple | list) else (index, jnp.zeros((), jnp.uint32))
    lo, hi = jnp.asarray(lo, jnp.uint32), jnp.asarray(hi, jnp.uint32)
    lo, hi = jnp.broadcast_arrays(lo, hi)
    words = jax.random.key_data(key)
    data = jnp.stack(
        [
            jnp.broadcast_to(words[0], lo.shape),
            jnp.broadcast_to(words[1], lo.shape),
            words[2] ^ lo,
            words[3] ^ hi ^ _STREAM_TAG,
        ],
        axis=-1,
    )
    return jax.random.wrap_key_data(data, impl=PHILOX)
