"""The support layer of ``mc``, ``experiments``, ``benchmarks`` and the notebooks.

Not part of the initializer API (``import flaxinit`` does not load it): atomic file
writes, and the machine description stored beside every result.
"""

from flaxinit.tooling._io import atomic_path, write_csv, write_json, write_text
from flaxinit.tooling._machine import cpu_model, machine

__all__ = ["atomic_path", "cpu_model", "machine", "write_csv", "write_json", "write_text"]
