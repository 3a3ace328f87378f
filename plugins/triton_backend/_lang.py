"""Stand-ins for triton.language helpers that triton writes as @jit functions (tl.sum, tl.max, tl.sigmoid;
tl.zeros and tl.cdiv too, for which the kernels use tl.full and integer arithmetic), and block_dot, which several
kernels share. Triton wraps those for the interpreter or for compilation once, when it is first imported; in a
process where something (torch._dynamo does) imported triton before TRITON_INTERPRET=1 was set, interpreted
kernels cannot call them. These are wrapped with our kernels, so either mode works; compiled, they produce the same code as triton's own."""
import triton
import triton.language as tl


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _larger(a, b):
    return tl.maximum(a, b)


# The interpreter recognises triton's own combine functions by identity and reduces with one numpy call (it
# never calls them); any other combine function it calls element by element, ~2x slower for our tests.
_SUM_COMBINE = getattr(tl.standard, "_sum_combine", _add)
_MAX_COMBINE = getattr(tl.standard, "_elementwise_max", _larger)


@triton.jit
def sum_(x, axis: tl.constexpr):
    return tl.reduce(x, axis, _SUM_COMBINE)


@triton.jit
def max_(x, axis: tl.constexpr):
    return tl.reduce(x, axis, _MAX_COMBINE)


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def block_dot(a, b, DOT_F32: tl.constexpr):
    """tl.dot of two tiles; with DOT_F32 in float32 (float32 runs, and the interpreter, whose numpy stores bf16 as
    uint16 and cannot matmul it)."""
    if DOT_F32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")  # no TF32 in float32 runs
    return tl.dot(a, b)
