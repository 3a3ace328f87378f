"""The built-in quantizations, registered through the same hook as a plugin's (entry point in setup.cfg).

Names: "int8" is symmetric int8 with one scale per output channel; "int4" is asymmetric int4 in groups of 32 inputs
(llama.cpp's Q4_1 form), "int4-g128" the same in groups of 128 (a quarter of the scales, a little less accurate).
The int4 ones also keep a checkpoint's int8 blocks as stored (a GGUF's Q8_0 embedding / lm_head)."""
from zooinfer.hookspecs import hookimpl

from .quantization import Quantization


class Int8(Quantization):
    name = "int8"
    method = "int8"
    group_size = None
    checkpoint_methods = ("int8",)


class Int4(Quantization):
    name = "int4"
    method = "int4"
    group_size = 32
    checkpoint_methods = ("int4", "int8")


class Int4G128(Int4):
    name = "int4-g128"
    group_size = 128


@hookimpl
def zooinfer_register_quantizations(registry):
    for cls in (Int8, Int4, Int4G128):
        registry.register(cls.name, cls)
