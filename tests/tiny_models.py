"""Tiny, randomly initialised models of the real architectures, saved like Hub checkpoints.

Qwen2.5-VL, Qwen3-VL, Qwen2 and Qwen3 causal LMs, each with a small byte-level
BPE tokenizer trained here (with the Qwen special tokens and a chat template)
and the model's real processor classes; and a Nemotron Nano VL v2 for vLLM.
Loading them back goes through AutoProcessor / AutoModel* (or vLLM), the same
path a downloaded model takes. Sizes suit vLLM's CPU attention too: 2 heads of
64 (it refuses heads under 32), one KV head. The video processors carry the
real checkpoints' pixel bounds, so frames sized by vidcap stay as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|video_pad|>",
    "<|image_pad|>",
    "<think>",
    "</think>",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3's own template in short: with thinking off, the answer starts after an empty think block.
QWEN3_CHAT_TEMPLATE = CHAT_TEMPLATE.replace(
    "<|im_start|>assistant\n{% endif %}",
    "<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}",
)
# Pixel bounds of the released checkpoints' video processors (per frame for Qwen2.5-VL, per clip for Qwen3-VL).
QWEN25_VIDEO_SIZE = {"shortest_edge": 3136, "longest_edge": 12845056}
QWEN3_VIDEO_SIZE = {"shortest_edge": 4096, "longest_edge": 25165824}

CORPUS = [
    "A red car drives down a wet street at night while people cross at the light.",
    "Describe this video in detail. The camera pans slowly over a green field.",
    "Rewrite the description so that it is richer, with colours, light and motion.",
    "Frames show a dog running on a beach; waves roll in under a grey sky.",
]


def build_tokenizer(chat_template: str = CHAT_TEMPLATE) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 10, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chat_template,
        padding_side="left",
    )


def _text_config(tokenizer: Any, **extra: Any) -> dict[str, Any]:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    base = dict(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    return base | extra


def _vision_ids(tokenizer: Any) -> dict[str, int]:
    return {
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }


def _save(model: Any, processor: Any, tokenizer: Any, out: Path) -> Path:
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_qwen25_vl(out: Path) -> Path:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = build_tokenizer()
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(size=QWEN25_VIDEO_SIZE),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    config = Qwen2_5_VLConfig(
        # mrope sections sum to head_dim / 2 (128 / 2 heads / 2 = 32).
        text_config=_text_config(tok, rope_scaling={"type": "mrope", "mrope_section": [8, 12, 12]}),
        vision_config=dict(
            depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=128,
            fullatt_block_indexes=[1], window_size=56, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
        ),
        **_vision_ids(tok),
    )  # fmt: skip
    return _save(Qwen2_5_VLForConditionalGeneration(config), processor, tok, out)


def build_qwen3_vl(out: Path) -> Path:
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    tok = build_tokenizer()
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16),
        video_processor=Qwen3VLVideoProcessor(size=QWEN3_VIDEO_SIZE),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    config = Qwen3VLConfig(
        text_config=_text_config(
            tok,
            head_dim=64,
            rope_scaling={"rope_type": "default", "mrope_section": [8, 12, 12], "mrope_interleaved": True},
            # Room for a window of 36 full-size frames (about 14k tokens), like the real model's 256k.
            max_position_embeddings=32768,
        ),
        vision_config=dict(
            depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=128, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[1], num_position_embeddings=64,
        ),
        **_vision_ids(tok),
    )  # fmt: skip
    return _save(Qwen3VLForConditionalGeneration(config), processor, tok, out)


def build_qwen2_lm(out: Path, **config: Any) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()
    model = Qwen2ForCausalLM(Qwen2Config(**_text_config(tok, **config)))
    return _save(model, tok, tok, out)


def build_qwen3_lm(out: Path) -> Path:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = build_tokenizer(QWEN3_CHAT_TEMPLATE)
    model = Qwen3ForCausalLM(Qwen3Config(**_text_config(tok, head_dim=64)))
    return _save(model, tok, tok, out)


NEMOTRON_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<image>", "<video>"]
NEMOTRON_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_nemotron_vl(out: Path) -> Path:
    """A config and tokenizer shaped like Nemotron Nano 12B v2 VL, for vLLM with ``load_format="dummy"``.

    The released checkpoint's config class is remote code (model_type NemotronH_Nano_VL_V2); transformers 5.19
    carries the same layout natively as ``nemotron_h_omni``, and vLLM picks its model by ``architectures``.
    vLLM needs ``NEMOTRON_ENGINE_OVERRIDES`` for it (see there). No weights: vLLM fills them at random.
    """
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=NEMOTRON_SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator([*CORPUS, "Frame 1 sampled at 0.00 seconds: 0123456789"] * 10, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=NEMOTRON_CHAT_TEMPLATE
    )
    tok.save_pretrained(out)
    ids = {t: tok.convert_tokens_to_ids(t) for t in NEMOTRON_SPECIAL}
    config = {
        "architectures": ["NemotronH_Nano_VL_V2"],
        "model_type": "nemotron_h_omni",
        "force_image_size": 512,
        "patch_size": 16,
        "downsample_ratio": 0.5,
        "template": "nemotron5",
        "ps_version": "v2",
        "image_tag_type": "internvl",
        "use_thumbnail": True,
        "norm_mean": [0.48145466, 0.4578275, 0.40821073],
        "norm_std": [0.26862954, 0.26130258, 0.27577711],
        "vit_hidden_size": 384,
        "vision_hidden_size": 384,
        "projector_hidden_size": 256,
        "img_context_token_id": ids["<image>"],
        "image_token_id": ids["<image>"],
        "video_token_id": ids["<image>"],
        "video_temporal_patch_size": 2,
        "vision_config": {
            "model_type": "radio",
            "args": {"model": "vit_small_patch16_224", "register_multiple": 8, "cpe_max_size": 2048,
                     "teachers": [], "cls_token_per_teacher": False},
            "preferred_resolution": [512, 512], "patch_size": 16, "hidden_size": 384, "num_hidden_layers": 2,
            "num_attention_heads": 6, "video_temporal_patch_size": 2,
        },
        "text_config": {
            "model_type": "nemotron_h", "vocab_size": len(tok), "hidden_size": 128, "intermediate_size": 256,
            "num_hidden_layers": 3, "hybrid_override_pattern": "M*-", "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 64, "mamba_num_heads": 4, "mamba_head_dim": 32, "n_groups": 1,
            "ssm_state_size": 16, "conv_kernel": 4, "chunk_size": 128, "max_position_embeddings": 8192,
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"], "tie_word_embeddings": False, "dtype": "bfloat16",
        },
        "dtype": "bfloat16",
    }  # fmt: skip
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": ids["<|im_end|>"]}))
    return out


# Nemotron 3's template switch: with enable_thinking false the answer starts after an empty think block.
NEMOTRON_OMNI_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% else %}<think>\n{% endif %}"
    "{% endif %}"
)


def build_nemotron_omni(out: Path) -> Path:
    """Nemotron 3 Nano Omni's shape for vLLM: the Nano VL layout above under the Omni's architecture name (vLLM
    runs both with one model class), with a chat template that honours ``enable_thinking`` as the real one does."""
    import json

    from transformers import AutoTokenizer

    build_nemotron_vl(out)
    config = json.loads((out / "config.json").read_text())
    config["architectures"] = ["NemotronH_Nano_Omni_Reasoning_V3"]
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = NEMOTRON_OMNI_CHAT_TEMPLATE
    tok.save_pretrained(out)
    return out


# What vLLM needs beyond the config above: random weights; Nano v2's one-frame tubelets (the native config
# class only validates 2 or more, so config.json says 2 and this says 1); the ViT width under the name vLLM reads.
NEMOTRON_ENGINE_OVERRIDES = {
    "load_format": "dummy",
    "hf_overrides": {
        "video_temporal_patch_size": 1,
        "vision_config": {"video_temporal_patch_size": 1},
        "vit_hidden_size": 384,
    },
}
