"""FP8 KV-pool encoding in Triton, bit for bit zooinfer.kv_cache.quantize_fp8: per row, scale = max|x| * (1/448)
(1 for a zero row), codes = x / scale rounded to nearest even on the float8_e4m3fn grid.

The rounding is done in float32 before the cast, so the cast only ever sees a value it can hold exactly: the
Triton interpreter's float32 -> e4m3 cast drops the carry when the mantissa rounds up (31.6 becomes 16, not 32),
while a GPU's rounds correctly; pre-rounded, both give the same codes, on one code path."""
import triton
import triton.language as tl

from ._lang import max_

# Compiled kernels read globals only as constexprs.
FP8_MAX = tl.constexpr(448.0)
_RINT = tl.constexpr(12582912.0)  # 1.5 * 2**23: adding and subtracting it rounds a float32 below 2**22 to an integer,
# ties to even


@triton.jit
def round_to_e4m3(y):
    """y (float32, |y| <= 448) rounded to nearest even on the e4m3 grid: steps of 2**(e - 3) for |y| in
    [2**e, 2**(e+1)), e >= -6, and of 2**-9 below (subnormals). The sign is kept, zeros included."""
    bits = y.to(tl.int32, bitcast=True)
    exponent = tl.maximum((bits >> 23) & 0xFF, 127 - 6)  # biased float32 exponent, floored at e4m3's smallest normal
    step = ((exponent - 3) << 23).to(tl.float32, bitcast=True)
    inverse = ((257 - exponent) << 23).to(tl.float32, bitcast=True)  # 1 / step, exactly
    magnitude = ((tl.abs(y) * inverse + _RINT) - _RINT) * step  # scaling by a power of two is exact
    return tl.where(bits < 0, -magnitude, magnitude)


@triton.jit
def quantize_rows(x):
    """x [R, C] -> (codes as float32 values on the e4m3 grid [R, C], float32 scales [R]); masked lanes must be 0."""
    x = x.to(tl.float32)
    amax = max_(tl.abs(x), axis=1)
    scale = tl.where(amax > 0, amax * (1.0 / FP8_MAX), 1.0)
    y = tl.minimum(tl.maximum(tl.div_rn(x, scale[:, None]), -FP8_MAX), FP8_MAX)  # IEEE division, as torch divides
    return round_to_e4m3(y), scale
