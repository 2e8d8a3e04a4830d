"""What ``python -m mc``'s two sets of commands (the Monte Carlo tests, the μP checks) parse alike:
lists of sizes, positive numbers, JAX's persistent compilation cache."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import jax

from flaxinit import tooling

#: Where compiled kernels are kept between runs (``--compilation-cache``).
DEFAULT_COMPILATION_CACHE = Path.home() / ".cache" / "flaxinit" / "xla"


def int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise tooling.UsageError(f"{what} must be a comma-separated list of positive integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise tooling.UsageError(f"{what} must be a comma-separated list of positive integers, got {text!r}")
    return values


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def at_least_two(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 2 (a standard error needs two), got {text!r}")
    return value


def compilation_cache_argument(p: argparse.ArgumentParser) -> None:
    """``--compilation-cache DIR``: JAX's persistent cache (every command that compiles takes it)."""
    p.add_argument(
        "--compilation-cache",
        metavar="DIR",
        default=os.environ.get("FLAXINIT_COMPILATION_CACHE", str(DEFAULT_COMPILATION_CACHE)),
        help="JAX's persistent compilation cache, so reruns start fast ('none': off; default "
        "$FLAXINIT_COMPILATION_CACHE or ~/.cache/flaxinit/xla)",
    )


def use_compilation_cache(directory: str) -> None:
    """Turns on JAX's persistent compilation cache in ``directory`` (``"none"``: leaves it off)."""
    if directory.lower() == "none":
        return
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise tooling.UsageError(f"--compilation-cache: cannot create {path} ({err.strerror})") from None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
