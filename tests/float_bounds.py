"""Float32 rounding bounds for tests that compare results of *different* programs.

Two programs computing the same math (eager vs jit, linen vs nnx, a conv vs a matmul) may
order sums differently and fuse multiply-adds differently, and other CPUs make other
choices; such tests use these bounds, never a tolerance that one machine happens to meet.
A float32 sum of ``k`` terms (products included, any order, with or without FMA) is within
``gamma(k) * sum |terms|`` of the exact value (Higham, *Accuracy and Stability of Numerical
Algorithms*, section 3.1).
"""

U32 = 2.0**-24  # unit roundoff of float32


def gamma(k: int) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)`` for float32."""
    return k * U32 / (1 - k * U32)
