"""A user's own model factory, for ``python -m mc audit --model audit_models:bare_model`` in the tests."""

import flax.linen as nn


def bare_model(kernel_init):
    """A model without inputs: the CLI needs --input-shape for it."""
    return nn.Dense(4, kernel_init=kernel_init)
