"""`VideoMakerPipeline`: diffusers' AnimateDiffPipeline with a reference image injected through PISA."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from diffusers import AnimateDiffPipeline
from diffusers.pipelines.animatediff.pipeline_output import AnimateDiffPipelineOutput
from PIL import Image

from vm_common.media import load_image

from .guidance import check_reference_guidance_scale, combine
from .injection import InjectionSchedule, schedule_weights
from .pisa import PISAConfig, install_pisa, installed_pisa_config
from .unet_call import check_frame_count, unet_with_reference

logger = logging.getLogger(__name__)

ReferenceInput = Union[str, os.PathLike, Image.Image, np.ndarray]

def encode_reference_images(vae, images: torch.Tensor, encoding: str = "mean", device=None) -> torch.Tensor:
    """VAE-encode reference images (N, 3, H, W) in [-1, 1] without noise, scaled as the UNet sees them.

    ``encoding``: ``mean`` (the latent mean: deterministic; training and our inference use it, so the reference
    latents match) or ``sample`` (the official release: ``latent_dist.sample()`` from the global RNG). ``device``:
    where the VAE computes (default: where its weights are; under sequential offload they are on ``meta``)."""
    posterior = vae.encode(images.to(device=device or vae.device, dtype=vae.dtype)).latent_dist
    if encoding == "mean":
        latents = posterior.mean
    elif encoding == "sample":
        latents = posterior.sample()
    else:
        raise ValueError(f"reference encoding must be 'mean' or 'sample', got {encoding!r}")
    return latents * vae.config.scaling_factor


class VideoMakerPipeline(AnimateDiffPipeline):
    """AnimateDiff + VideoMaker: pass ``reference_image`` (or ``reference_latents``) to customize the subject.

    Defaults follow the official release: the reference is appended after the generated frames; classifier-free
    guidance uses the negative prompt together with an all-zero reference latent in the unconditional branch;
    DDIM, 30 steps, guidance 8, 16 frames, 512x512 (the UNet's native size). Without a reference the pipeline is
    plain AnimateDiff.

    Beyond the paper (both off by default, and then the computation is the paper's, bit for bit):
    ``injection_schedule`` (a spec such as ``customcrafter`` or ``0:0,0.4:1``, an
    :class:`~vm_model.injection.InjectionSchedule`, or one weight per step) sets the reference's weight inside PISA
    at each denoising step; ``reference_guidance_scale`` adds a third guidance branch (negative prompt +
    reference) and guides text (``guidance_scale``) and reference separately (``vm_model.guidance``).

    Several references (``reference_image`` a list, or R reference frames) are several subjects; when the UNet has
    ID routers (``vm_model.routing``, weights trained with `vm train --router`) each generated token attends to the
    references as its router says. ``routing``: None (default: soft where routers exist), ``"soft"``, ``"hard"``
    (each token sees only its argmax reference, or none) or ``"off"`` (plain PISA).
    """

    def __init__(self, vae, text_encoder, tokenizer, unet, motion_adapter=None, scheduler=None,
                 feature_extractor=None, image_encoder=None, pisa_config: PISAConfig | None = None):
        if scheduler is None:
            from .scheduler import inference_scheduler

            scheduler = inference_scheduler()  # the paper's DDIM; load_pipeline reads the base model's config
        super().__init__(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                         motion_adapter=motion_adapter, scheduler=scheduler, feature_extractor=feature_extractor,
                         image_encoder=image_encoder)
        if pisa_config is not None or installed_pisa_config(self.unet) is None:
            install_pisa(self.unet, pisa_config or PISAConfig())

    @property
    def pisa_config(self) -> PISAConfig | None:
        return installed_pisa_config(self.unet)

    def set_pisa_config(self, config: PISAConfig) -> None:
        install_pisa(self.unet, config)

    # ------------------------------------------------------------------------------------------ references
    def prepare_reference_latents(self, reference_image: ReferenceInput | Sequence[ReferenceInput], height: int,
                                  width: int, device, dtype, *, encoding: str = "mean",
                                  alpha: str = "white") -> torch.Tensor:
        """Images -> (1, C, R, h, w) latents. Each image is loaded (EXIF/gray/16-bit handled, transparency composited
        on white or dropped as ``alpha`` says, see ``vm_common.media.load_image``) and resized to (width, height)
        like the official release; ``encoding`` as in :func:`encode_reference_images`."""
        items = list(reference_image) if isinstance(reference_image, (list, tuple)) else [reference_image]
        if not items:
            raise ValueError("reference_image is an empty list")
        tensors = []
        for i, item in enumerate(items):
            image = load_image(item, name=f"reference_image[{i}]" if len(items) > 1 else "reference_image",
                               alpha=alpha)
            image = image.resize((width, height), Image.BICUBIC)
            arr = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
            tensors.append(arr)
        batch = torch.stack(tensors).to(device=device)
        latents = encode_reference_images(self.vae, batch, encoding, device=self._execution_device)  # (R, C, h, w)
        return latents.permute(1, 0, 2, 3).unsqueeze(0).to(dtype)

    def _check_videomaker_inputs(self, prompt, prompt_embeds, reference_image, reference_latents, num_frames):
        if reference_image is not None and reference_latents is not None:
            raise ValueError("pass either reference_image or reference_latents, not both")
        if prompt_embeds is None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
            if not prompts:
                raise ValueError("no prompt given (pass prompt or prompt_embeds)")
            for i, p in enumerate(prompts):
                if not isinstance(p, str) or not p.strip():
                    raise ValueError(f"prompt[{i}] is empty: {p!r}; a video needs a text prompt")
        if reference_latents is not None and reference_latents.ndim != 5:
            raise ValueError(f"reference_latents must have shape (B, C, R, h, w), got {tuple(reference_latents.shape)}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if self.free_init_enabled or self.free_noise_enabled:
            raise NotImplementedError("FreeInit / FreeNoise are not supported together with a reference")

    # ------------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        num_frames: int = 16,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 30,
        guidance_scale: float = 8.0,
        negative_prompt: str | list[str] | None = None,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        ip_adapter_image=None,
        ip_adapter_image_embeds: list[torch.Tensor] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        clip_skip: int | None = None,
        callback_on_step_end: Callable[[Any, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
        decode_chunk_size: int = 16,
        reference_image: ReferenceInput | Sequence[ReferenceInput] | None = None,
        reference_latents: torch.Tensor | None = None,
        injection_schedule: str | InjectionSchedule | Sequence[float] | None = None,
        reference_guidance_scale: float | None = None,
        routing: str | None = None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        control = None
        from .routing import RoutingControl, has_routers

        if routing is not None:  # None: layers with a router route softly (vm_model.routing)
            control = RoutingControl(routing)
        elif has_routers(self.unet):  # the same soft routing, with the latent size (a neighbourhood router's grid)
            control = RoutingControl("soft")
        if cross_attention_kwargs:
            raise ValueError("cross_attention_kwargs are set per call by the pipeline (PISA frame counts); "
                             f"got {sorted(cross_attention_kwargs)}")
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        self._check_videomaker_inputs(prompt, prompt_embeds, reference_image, reference_latents, num_frames)
        has_reference = reference_image is not None or reference_latents is not None
        weights = schedule_weights(injection_schedule, num_inference_steps)
        check_reference_guidance_scale(reference_guidance_scale)
        if not has_reference and (weights is not None or reference_guidance_scale is not None):
            raise ValueError("injection_schedule and reference_guidance_scale act on a reference; none was given")
        separate = reference_guidance_scale is not None
        if (reference_image is not None or reference_latents is not None) and (
                ip_adapter_image is not None or ip_adapter_image_embeds is not None):
            raise ValueError("IP-Adapter inputs together with a VideoMaker reference are not supported: loading an "
                             "IP-Adapter replaces the attention processors that PISA needs")
        self.check_inputs(prompt, height, width, None, negative_prompt, prompt_embeds, negative_prompt_embeds,
                          ip_adapter_image, ip_adapter_image_embeds, callback_on_step_end_tensor_inputs)
        self._guidance_scale = guidance_scale
        self._clip_skip = clip_skip
        self._cross_attention_kwargs = None
        self._interrupt = False

        if prompt is not None:
            batch_size = 1 if isinstance(prompt, str) else len(prompt)
        else:
            batch_size = prompt_embeds.shape[0]
        device = self._execution_device
        total = batch_size * num_videos_per_prompt

        guided = self.do_classifier_free_guidance or separate
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, device, num_videos_per_prompt, guided, negative_prompt,
            prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, clip_skip=self.clip_skip)
        if separate:  # branches: (negative, zero reference), (negative, reference), (prompt, reference)
            text = torch.cat([negative_prompt_embeds, negative_prompt_embeds, prompt_embeds])
        else:
            text = torch.cat([negative_prompt_embeds, prompt_embeds]) if guided else prompt_embeds

        if reference_image is not None:
            reference_latents = self.prepare_reference_latents(reference_image, height, width, device,
                                                               prompt_embeds.dtype)
        ref = None
        if reference_latents is not None:
            ref = reference_latents.to(device=device, dtype=prompt_embeds.dtype)
            if ref.shape[0] == 1:
                ref = ref.expand(total, *ref.shape[1:])
            elif ref.shape[0] == batch_size:
                ref = ref.repeat_interleave(num_videos_per_prompt, dim=0)
            elif ref.shape[0] != total:
                raise ValueError(f"reference_latents batch {ref.shape[0]} matches neither 1, the prompt batch "
                                 f"{batch_size} nor the video batch {total}")
            expected = (self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
            got = (ref.shape[1], ref.shape[3], ref.shape[4])
            if got != expected:
                raise ValueError(f"reference_latents (C, h, w) = {got}, expected {expected} for {height}x{width}")
            if separate:
                ref = torch.cat([torch.zeros_like(ref), ref, ref])
            elif guided:  # unconditional branch: negative prompt + all-zero reference
                ref = torch.cat([torch.zeros_like(ref), ref])
        check_frame_count(self.unet, num_frames, 0 if ref is None else ref.shape[2])

        added_cond_kwargs = None
        if ip_adapter_image is not None or ip_adapter_image_embeds is not None:
            image_embeds = self.prepare_ip_adapter_image_embeds(ip_adapter_image, ip_adapter_image_embeds, device,
                                                                total, self.do_classifier_free_guidance)
            added_cond_kwargs = {"image_embeds": image_embeds}

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        latents = self.prepare_latents(total, self.unet.config.in_channels, num_frames, height, width,
                                       prompt_embeds.dtype, device, generator, latents)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        self._num_timesteps = len(timesteps)

        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                model_input = torch.cat([latents] * (3 if separate else 2)) if guided else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                noise_pred, _ = unet_with_reference(self.unet, model_input, ref, t, text, added_cond_kwargs,
                                                    reference_weight=1.0 if weights is None else weights[i],
                                                    routing=control)
                if guided:
                    noise_pred = combine(noise_pred, guidance_scale, reference_guidance_scale)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs).prev_sample
                if callback_on_step_end is not None:
                    local = {"latents": latents, "prompt_embeds": prompt_embeds,
                             "negative_prompt_embeds": negative_prompt_embeds}
                    outputs = callback_on_step_end(self, i, t, {k: local[k] for k in callback_on_step_end_tensor_inputs})
                    latents = outputs.pop("latents", latents)
                progress_bar.update()

        if output_type == "latent":
            video = latents
        else:
            video_tensor = self.decode_latents(latents, decode_chunk_size)
            video = self.video_processor.postprocess_video(video=video_tensor, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video,)
        return AnimateDiffPipelineOutput(frames=video)
