"""Pretrained weights used by vm_model (the official release's defaults)."""

from vm_common.weights import WeightSpec, register

BASE_MODEL = register(WeightSpec(
    key="base_model",
    description="Stable Diffusion 1.5 base (Realistic Vision V5.1 noVAE, diffusers layout: unet/vae/text_encoder/tokenizer)",
    default="SG161222/Realistic_Vision_V5.1_noVAE",
    used_by=("cache-latents", "train", "generate", "bench"),
))
MOTION_ADAPTER = register(WeightSpec(
    key="motion_adapter",
    description="AnimateDiff motion adapter v1-5-3",
    default="guoyww/animatediff-motion-adapter-v1-5-3",
    used_by=("train", "generate", "bench"),
))
VIDEOMAKER_HUMAN = register(WeightSpec(
    key="videomaker_human",
    description="official VideoMaker weights for humans (PISA spatial attention + motion modules)",
    default="SugerWu/VideoMaker",
    filename="human_pytorch_model.bin",
    used_by=("generate", "bench"),
))
VIDEOMAKER_OBJECT = register(WeightSpec(
    key="videomaker_object",
    description="official VideoMaker weights for objects/animals",
    default="SugerWu/VideoMaker",
    filename="object_pytorch_model.bin",
    used_by=("generate", "bench"),
))
