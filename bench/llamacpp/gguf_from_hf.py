"""
Benchmark tooling only (never part of the product): write a Hugging Face Llama checkpoint (fp32 safetensors, e.g. the
SYNTHETIC model of bench/synthetic.ts) as GGUF for llama.cpp, with Q4_0 attention/MLP linears, an F16 output head and
F16 token embeddings, F32 norms — the llama.cpp Q4_0 baseline of issue 17.

    /work/venv/bin/pip install --index-url file:///opt/pypi/simple --extra-index-url file:///opt/pypi-more/simple gguf
    /work/venv/bin/python bench/llamacpp/gguf_from_hf.py /tmp/gptqjs-bench/llama1b-synthetic /tmp/gptqjs-bench/llama1b-synthetic-q4_0.gguf

Follows llama.cpp's convert_hf_to_gguf.py for LlamaForCausalLM (tensor names, metadata keys, q/k rows permuted from
HF's rotate_half layout to llama.cpp's interleaved rotary); the vocabulary is a placeholder SentencePiece-style list
of vocab_size tokens (<unk>, <s>, </s>, 256 byte tokens, then "t<i>"): benchmarks feed token ids, never text.
"""
import json
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType
from gguf.quants import quantize
from safetensors import safe_open


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # HF q/k rows are [half0 of each head | half1]; llama.cpp wants the two halves interleaved (convert_hf_to_gguf.py)
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main(src: str, out: str) -> None:
    cfg = json.load(open(f"{src}/config.json"))
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    w = GGUFWriter(out, "llama")
    w.add_name("gptqjs synthetic llama (benchmark)")
    w.add_context_length(cfg.get("max_position_embeddings", 4096))
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(H // nh)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
    w.add_file_type(2)  # LLAMA_FTYPE_MOSTLY_Q4_0
    w.add_tokenizer_model("llama")
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    toks += [f"t{i}" for i in range(V - len(toks))]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256 + [TokenType.NORMAL] * (V - 259)
    w.add_token_list(toks)
    w.add_token_scores([0.0] * V)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    with safe_open(f"{src}/model.safetensors", framework="np") as f:
        def add(name: str, t: np.ndarray, kind: str) -> None:
            if kind == "q4_0":
                w.add_tensor(name, quantize(t.astype(np.float32), GGMLQuantizationType.Q4_0), raw_dtype=GGMLQuantizationType.Q4_0)
            elif kind == "f16":
                w.add_tensor(name, t.astype(np.float16))
            else:
                w.add_tensor(name, t.astype(np.float32))
        add("token_embd.weight", f.get_tensor("model.embed_tokens.weight"), "f16")
        for i in range(L):
            for hf, gg in names.items():
                suffix = ".weight"
                t = f.get_tensor(f"model.layers.{i}.{hf}{suffix}")
                if hf == "self_attn.q_proj":
                    t = permute(t, nh)
                elif hf == "self_attn.k_proj":
                    t = permute(t, nkv)
                add(f"blk.{i}.{gg}.weight", t, "f32" if hf.endswith("layernorm") else "q4_0")
            print(f"layer {i + 1}/{L}", file=sys.stderr, flush=True)
        add("output_norm.weight", f.get_tensor("model.norm.weight"), "f32")
        add("output.weight", f.get_tensor("lm_head.weight"), "f16")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
