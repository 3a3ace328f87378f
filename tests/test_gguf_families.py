"""GGUF files of other llama-like architectures, written with the gguf package's writer from tiny random
transformers models the way llama.cpp's converter lays them out, then converted and checked against the
original model: qwen2 and qwen3 (q/k stored as they are), and a Mistral model written as a "llama" file."""
import gguf
import pytest
from transformers import MistralConfig, Qwen2Config, Qwen3Config

from hf_reference import assert_greedy_matches, save_random_model
from zooinfer import LLM, SamplingParams, gguf_convert

pytestmark = pytest.mark.usefixtures("torch_single_thread")
TINY = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=5000.0)
CASES = {
    "qwen2": ("qwen2", Qwen2Config(**TINY)),
    "qwen3": ("qwen3", Qwen3Config(**TINY, head_dim=16)),
    "mistral_as_llama": ("llama", MistralConfig(**{**TINY, "num_key_value_heads": 1}, head_dim=12,
                                                  sliding_window=None)),
}
PROMPTS = [[3, 17, 92, 5, 44, 8, 50, 21, 9], list(range(20, 50))]


def permute(w, n_head):  # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, arch, hf_model):
    c = hf_model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    w = gguf.GGUFWriter(str(path), arch)
    for key, val in [("embedding_length", c.hidden_size), ("block_count", c.num_hidden_layers),
                     ("feed_forward_length", c.intermediate_size), ("attention.head_count", c.num_attention_heads),
                     ("attention.head_count_kv", c.num_key_value_heads), ("context_length", c.max_position_embeddings),
                     ("attention.key_length", head_dim), ("rope.dimension_count", head_dim)]:
        w.add_uint32(f"{arch}.{key}", val)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", c.rms_norm_eps)
    w.add_float32(f"{arch}.rope.freq_base", c.rope_parameters["rope_theta"])
    inverse = {v: k for k, v in gguf_convert._TOP.items()} | {v: k for k, v in gguf_convert._BLOCK.items()}
    for name, t in hf_model.state_dict().items():
        base, kind = name.rsplit(".", 1)
        if base in inverse:
            g = inverse[base]
        else:  # model.layers.N.<module>
            _, _, layer, module = base.split(".", 3)
            g = f"blk.{layer}.{inverse[module]}"
        t = t.numpy()
        if arch == "llama" and ".q_proj." in name:
            t = permute(t, c.num_attention_heads)
        elif arch == "llama" and ".k_proj." in name:
            t = permute(t, c.num_key_value_heads)
        w.add_tensor(f"{g}.{kind}", t)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


@pytest.mark.parametrize("name", CASES)
def test_converted_gguf_matches_the_original_model(name, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_convert, "_save_tokenizer", lambda src, out: None)  # no tokenizer metadata here
    arch, config = CASES[name]
    hf = save_random_model(config, tmp_path / "hf")
    write_gguf(tmp_path / "m.gguf", arch, hf)
    out = gguf_convert.convert_gguf(tmp_path / "m.gguf", tmp_path / "converted")
    llm = LLM(str(out), strict=True)
    params = SamplingParams(max_new_tokens=8, temperature=0, logprobs=0, ignore_eos=True)
    for prompt, result in zip(PROMPTS, llm.generate(prompt_token_ids=PROMPTS, sampling_params=params)):
        assert_greedy_matches(hf, prompt, result)
