"""The support layer of ``mc``, ``experiments``, ``benchmarks`` and the notebooks.

Not part of the initializer API (``import flaxinit`` does not load it), but public, so no
package of the project reaches into another's private modules:

* results: :class:`AsDict` (``to_dict``/``from_dict`` of a result dataclass from its type
  hints) and :func:`json_float` (a number of strict JSON, ``null`` as NaN);
* files: :func:`atomic_path`, :func:`write_text`, :func:`write_csv`, and :func:`write_json`
  (strict JSON: NaN and infinities are written as ``null``, everywhere);
* figures: :func:`new_figure`, :func:`save_figure`, :func:`colormap` (matplotlib without
  pyplot: plotting never switches the caller's backend);
* :func:`machine`: the machine, software and backend stored beside every result;
* command lines: :class:`UsageError`, :class:`ArgumentParser`, :func:`positive_int`,
  :func:`run_command` (one-line errors, exit status 2), :func:`check_resumable` (``--resume``'s
  one settings check);
* :func:`train_step`: the one optax training step of every loop;
* :func:`nnx_call_hook`: the outputs of a ``flax.nnx`` model's own layers while it runs
  (``flaxinit.lsuv``), and :func:`nnx_intercept_calls`, every call of some nnx classes,
  around the call (``mc.audit``);
* parameter paths: :func:`flat_paths`, :func:`path_str`, :func:`key_names` (one ``/``-joined
  spelling for linen dicts, nnx states and modules, boxes' ``.value`` left out);
* Flax's parameter layouts: :func:`axis_kinds` (which axes of a parameter feed its fans),
  :func:`detect_stacks` (a layer stack's axes, from a parameter tree), :func:`initializer_shape`
  (the shape a Flax layer draws a parameter in); :mod:`flaxinit.mup` and ``mc.audit`` read them;
* argument checks, the same ones flaxinit's factories use (one message and one exception
  type per mistake): :func:`check_int`, :func:`check_real`, :func:`check_choice`,
  :func:`check_key`.
"""

from flaxinit._calls import nnx_call_hook, nnx_intercept_calls
from flaxinit._checks import check_choice, check_int, check_key, check_real
from flaxinit._layouts import axis_kinds, detect_stacks, guessed_layout, initializer_shape
from flaxinit._paths import flat_paths, key_names, path_str
from flaxinit._serial import AsDict, json_float
from flaxinit.tooling._cli import ArgumentParser, UsageError, check_resumable, positive_int, run_command
from flaxinit.tooling._io import atomic_path, to_json, write_csv, write_json, write_text
from flaxinit.tooling._machine import cpu_model, machine
from flaxinit.tooling._plots import colormap, new_figure, save_figure
from flaxinit.tooling._train import train_step

__all__ = [
    "ArgumentParser",
    "AsDict",
    "UsageError",
    "atomic_path",
    "axis_kinds",
    "check_choice",
    "check_int",
    "check_key",
    "check_real",
    "check_resumable",
    "colormap",
    "cpu_model",
    "detect_stacks",
    "flat_paths",
    "guessed_layout",
    "initializer_shape",
    "json_float",
    "key_names",
    "machine",
    "new_figure",
    "nnx_call_hook",
    "nnx_intercept_calls",
    "path_str",
    "positive_int",
    "run_command",
    "save_figure",
    "to_json",
    "train_step",
    "write_csv",
    "write_json",
    "write_text",
]
