"""Regression slices: a few numbers of the tiny pipeline's output, pinned (as diffusers' pipeline tests do).

The tiny components are deterministic (seeded builders), so any change to the computation - PISA, the guidance
branch, the scheduler, reference encoding, the frame layout - moves these numbers and fails loudly. The values were
produced by the code of commit 48471d5 and reproduced unchanged after the sources/protocol refactor. Change them
only with a note saying why the numbers had to move.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from vm_model.components import load_pipeline
from vm_model.protocol import GenerationProtocol, render_video
from vm_model.scheduler import DDIM_CONFIG, inference_scheduler_for
from vm_model.sources import ModelSources

TINY = ModelSources(base_model="builtin:tiny", motion_adapter="builtin:tiny")
# latents[0, :, 0, 0, :3] of the call below
EXPECTED_LATENT_SLICE = [
    -12.378022193908691, -16.896188735961914, -6.420022010803223, -3.560800790786743, 2.521000385284424,
    7.453955173492432, 4.494785308837891, 4.864202976226807, 14.54866886138916, -5.023601055145264,
    3.993908405303955, -13.905439376831055,
]


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(TINY, device="cpu")


def test_tiny_pipeline_latent_slice(pipe):
    generator = torch.Generator("cpu").manual_seed(0)
    latents = pipe(prompt="A cat is running on the grass.", negative_prompt="blurry",
                   reference_image=Image.fromarray(data.chelsea()), num_frames=3, height=64, width=64,
                   num_inference_steps=2, guidance_scale=8.0, generator=generator, output_type="latent").frames
    assert tuple(latents.shape) == (1, 4, 3, 8, 8)
    np.testing.assert_allclose(latents[0, :, 0, 0, :3].flatten().numpy(), EXPECTED_LATENT_SLICE, rtol=1e-4,
                               atol=1e-4)


def test_render_video_is_the_pipeline_call_with_the_protocol(pipe):
    """render_video (vm generate and vm bench run) = the pipeline called with the protocol's numbers."""
    protocol = GenerationProtocol(num_frames=2, height=64, width=64, steps=2, negative_prompt="none", seeds=[3])
    reference = pipe.prepare_reference_latents(Image.fromarray(data.chelsea()), 64, 64, "cpu", torch.float32)
    video = render_video(pipe, protocol, "A cat.", reference, 3)
    direct = pipe(prompt="A cat.", reference_latents=reference, num_frames=2, height=64, width=64,
                  num_inference_steps=2, guidance_scale=8.0, generator=torch.Generator("cpu").manual_seed(3),
                  output_type="np").frames[0]
    np.testing.assert_array_equal(video, direct)


def test_ddim_from_an_sd15_scheduler_config_is_the_paper_ddim(tmp_path):
    """SD 1.5's scheduler config (PNDM, scaled_linear) + the release's overrides = the paper's DDIM."""
    config = tmp_path / "scheduler_config.json"
    config.write_text(json.dumps({
        "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
        "trained_betas": None, "clip_sample": False}))
    ours = inference_scheduler_for(config)
    for key, value in DDIM_CONFIG.items():
        assert ours.config[key] == value, key
    ours.set_timesteps(30)
    assert ours.timesteps[:3].tolist() == [999, 965, 930]  # linspace spacing: the first step is at t = 999
