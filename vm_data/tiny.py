"""Tiny, random, deterministic detector and segmenter for the `tiny` preset (built offline, no downloads).

They are saved in the libraries' own formats - Grounding DINO with ``save_pretrained`` (model, image processor and
a BERT tokenizer written from a small ``vocab.txt``), SAM as a state-dict checkpoint file - and loaded back through
exactly the code that loads real weights (:func:`vm_data.detect.load_grounding_dino`,
:func:`vm_data.segment.load_sam_segmenter`). Their outputs are random: anything made with them is labelled
``random_weights``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vm_common.tiny import save_transformers_model, tiny_component

TINY_DETECTOR_IMAGE_SIZE = 128
SAM_TINY_FILENAME = "sam_vm_tiny.pth"

# A small word list: the prompts the toolkit uses plus letters, so that any lower-case word tokenizes.
_TINY_WORDS = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-"]
    + ["head", "person", "face", "dog", "cat", "bear", "car", "panda", "tiger", "horse", "elephant", "lion", "ball",
       "object", "subject", "toy", "bird"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789")
    + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
)


def write_bert_vocab(folder: Path, words: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path


def grounding_dino_processor(folder: Path, words: list[str], image_size: int | None):
    """A GroundingDinoProcessor: BERT tokenizer from ``words``, image processor resizing to ``image_size`` (None:
    the real checkpoints' 800 / 1333)."""
    from transformers import BertTokenizer, GroundingDinoImageProcessor, GroundingDinoProcessor

    vocab = write_bert_vocab(folder / "_vocab", words)
    tokenizer = BertTokenizer(str(vocab), do_lower_case=True, model_max_length=256)
    image_processor = GroundingDinoImageProcessor() if image_size is None else GroundingDinoImageProcessor(
        size={"shortest_edge": image_size, "longest_edge": image_size})
    return GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_grounding_dino_config(vocab_size: int):
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(image_size=224, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=7, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=37, max_position_embeddings=256)
    return GroundingDinoConfig(
        backbone_config=backbone, text_config=text, num_queries=20, encoder_layers=1, decoder_layers=2, d_model=32,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=256,
    )


def full_size_vocab(size: int = 30522) -> list[str]:
    """A BERT-base-sized word list (the tiny words, then ``[unusedN]`` fillers) for full-size random models."""
    return _TINY_WORDS + [f"[unused{i}]" for i in range(size - len(_TINY_WORDS))]


def save_random_full_grounding_dino(folder: Path, seed: int = 0) -> Path:
    """Grounding DINO with the grounding-dino-tiny architecture (Swin-T + BERT-base) at random init, saved like a
    real checkpoint (for speed and memory benchmarks; offline)."""
    import shutil

    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

    torch.manual_seed(seed)
    save_transformers_model(GroundingDinoForObjectDetection(GroundingDinoConfig()), folder)
    grounding_dino_processor(folder, full_size_vocab(), None).save_pretrained(folder)
    shutil.rmtree(folder / "_vocab", ignore_errors=True)
    return folder


def _build_grounding_dino(folder: Path) -> None:
    import shutil

    from transformers import GroundingDinoForObjectDetection

    torch.manual_seed(0)
    save_transformers_model(GroundingDinoForObjectDetection(tiny_grounding_dino_config(len(_TINY_WORDS))), folder)
    processor = grounding_dino_processor(folder, _TINY_WORDS, TINY_DETECTOR_IMAGE_SIZE)
    processor.save_pretrained(folder)
    shutil.rmtree(folder / "_vocab", ignore_errors=True)


def _build_sam(folder: Path) -> None:
    from .segment import build_sam

    torch.manual_seed(0)
    torch.save(build_sam("vm_tiny").state_dict(), folder / SAM_TINY_FILENAME)


def tiny_grounding_dino() -> Path:
    """Folder with a tiny random Grounding DINO (config.json, model.safetensors, processor and tokenizer files)."""
    return tiny_component("grounding-dino-tiny-random", _build_grounding_dino)


def tiny_sam_checkpoint() -> Path:
    """Path of a tiny random SAM state-dict checkpoint."""
    return tiny_component("sam-tiny-random", _build_sam) / SAM_TINY_FILENAME
