"""Schemes by name, and configs back to initializers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flaxinit import _constant, _fixed, _kaiming, _letkeman, _structured, _variance, _xavier
from flaxinit._base import Initializer

__all__ = ["available", "get"]

_FACTORIES: dict[str, Callable[..., Initializer]] = {
    name: getattr(module, name)
    for module, names in (
        (_constant, ("zeros", "ones", "constant")),
        (_xavier, ("xavier_standard", "xavier_normalized")),
        (_kaiming, ("kaiming_normal", "kaiming_uniform")),
        (_letkeman, ("letkeman_standard", "letkeman_normalized")),
        (_variance, ("variance_scaling", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal")),
        (_variance, ("lecun_uniform", "lecun_normal")),
        (_fixed, ("normal", "uniform", "truncated_normal")),
        (_structured, ("orthogonal", "delta_orthogonal", "identity", "eye", "dirac", "sparse")),
    )
    for name in names
}
#: The names whose factory is an alias of another's: their configs name the scheme they build.
ALIASES = {
    "glorot_uniform": "variance_scaling",
    "glorot_normal": "variance_scaling",
    "he_uniform": "variance_scaling",
    "he_normal": "variance_scaling",
    "lecun_uniform": "variance_scaling",
    "lecun_normal": "variance_scaling",
    "eye": "identity",
}


def available() -> tuple[str, ...]:
    """The names :func:`get` accepts, in a stable order.

    Aliases (``glorot_uniform``, ``he_normal``, ..., ``eye``) build the scheme they stand
    for, whose config carries that scheme's name (``variance_scaling``, ``identity``).

    Examples:
      >>> import flaxinit
      >>> flaxinit.available()[:3]
      ('zeros', 'ones', 'constant')
    """
    return tuple(_FACTORIES)


def get(identifier: str | Mapping[str, Any] | Initializer, **kwargs: Any) -> Initializer:
    """Builds an initializer from a name, a config dict or an initializer.

    Args:
      identifier: a scheme name from :func:`available`; a config as returned by
        ``Initializer.get_config()`` (``{"name": ..., **arguments}``); or an
        initializer, returned unchanged.
      **kwargs: arguments of the scheme's factory (with a name) or overrides of the
        config's entries (with a config).

    Returns:
      The initializer.

    Raises:
      ValueError: for an unknown name or a config without ``"name"``.
      TypeError: for arguments the scheme does not take.

    Examples:
      >>> import flaxinit
      >>> init = flaxinit.get("letkeman_standard", method="article")
      >>> flaxinit.get(init.get_config()) == init
      True
    """
    if isinstance(identifier, Initializer):
        if kwargs:
            raise TypeError("get(initializer) takes no keyword arguments")
        return identifier
    if isinstance(identifier, Mapping):
        config = dict(identifier)
        if "name" not in config:
            raise ValueError(f"a config must have a 'name' entry (one of {', '.join(available())}), got {identifier!r}")
        name = config.pop("name")
        kwargs = {**config, **kwargs}
    elif isinstance(identifier, str):
        name = identifier
    else:
        raise TypeError(f"identifier must be a scheme name, a config dict or an Initializer, got {identifier!r}")
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown scheme {name!r}; available: {', '.join(available())}") from None
    try:
        return factory(**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise TypeError(f"scheme {name!r} does not take {err}".replace("got an ", "")) from None
        raise
