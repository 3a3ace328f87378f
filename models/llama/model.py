from zooinfer.basemodel.decoder_model import DecoderTpPartModel


class LlamaTpPartModel(DecoderTpPartModel):
    """Llama: the decoder template as it is (rotary of every rope type, RMSNorm, GQA, SwiGLU)."""
    hf_config_class = "LlamaConfig"
