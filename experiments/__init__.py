"""The article's four-network training study (SPEC section 4), vectorized over seeds and schemes.

Run from the repository root: ``python -m experiments {counting,mnist-cnn,mnist-dense,hamlet-rnn,demos,all}``.
"""
