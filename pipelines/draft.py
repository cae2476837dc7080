"""Tier 2's draft mode: AnimateDiff-Lightning's 4-step motion module on the same SD 1.5 UNet, and
AnimateDiff's camera-move LoRAs on top of it.

Both motion modules stay resident from setup. A UNetMotionModel is SD 1.5's spatial UNet with a
list of motion modules hung in each block; the draft swaps those lists (and the mid block, where
Lightning has a motion module that v3 lacks) for Lightning's, so switching costs a few attribute
assignments and no copy of the spatial UNet or reload from disk. `DraftMode.active()` puts the
standard modules back and the LoRAs out of action when the request ends, whatever ends it.

The recipe is AnimateDiff-Lightning's model card (ByteDance/AnimateDiff-Lightning, arXiv
2403.12706): Euler with trailing timesteps on linear betas, 4 steps, guidance 1 (the distilled
model was trained without classifier-free guidance, so one UNet pass per step).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler, MotionAdapter
from diffusers.models.unets.unet_motion_model import UNetMidBlockCrossAttnMotion, UNetMotionModel
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file

from pipelines.common import Device
from weights import WEIGHT_SETS

# The model card's settings for the 4-step checkpoint.
DRAFT_STEPS = 4
DRAFT_GUIDANCE = 1.0
DRAFT_SCHEDULER_OVERRIDES = dict(timestep_spacing="trailing", beta_schedule="linear")
# camera_motion's choices (the user's words) -> the weight set of the matching motion LoRA.
CAMERA_MOTIONS = {
    "zoom_in": "motion_lora_zoom_in",
    "zoom_out": "motion_lora_zoom_out",
    "pan_left": "motion_lora_pan_left",
    "pan_right": "motion_lora_pan_right",
    "tilt_up": "motion_lora_tilt_up",
    "tilt_down": "motion_lora_tilt_down",
    "roll_clockwise": "motion_lora_rolling_clockwise",
    "roll_anticlockwise": "motion_lora_rolling_anticlockwise",
}
NO_CAMERA_MOTION = "none"
LORA_FILE = "diffusion_pytorch_model.safetensors"


@dataclass(frozen=True)
class MotionModules:
    """The motion modules a UNetMotionModel runs: one list per down and up block, and the mid block
    (which holds its motion module, if any, next to the spatial layers it shares)."""

    down: tuple[torch.nn.ModuleList, ...]
    up: tuple[torch.nn.ModuleList, ...]
    mid_block: torch.nn.Module

    @classmethod
    def installed_in(cls, unet: UNetMotionModel) -> MotionModules:
        return cls(
            tuple(block.motion_modules for block in unet.down_blocks),
            tuple(block.motion_modules for block in unet.up_blocks),
            unet.mid_block,
        )

    @classmethod
    def around(cls, unet: UNetMotionModel, adapter: MotionAdapter) -> MotionModules:
        """The adapter's motion modules, fitted to `unet`'s spatial layers without copying them."""
        spatial_mid = unet.mid_block
        # Lightning (like v2) has a mid-block motion module; v3 does not, so the UNet's mid block
        # is a plain UNetMidBlock2DCrossAttn. Build the motion variant's shell on the meta device
        # (no memory) and give it the UNet's own resnets and attentions, plus the adapter's module.
        with torch.device("meta"):
            mid_block = UNetMidBlockCrossAttnMotion(
                in_channels=spatial_mid.resnets[0].in_channels,
                temb_channels=spatial_mid.resnets[0].time_emb_proj.in_features,
                num_attention_heads=spatial_mid.num_attention_heads,
                num_layers=len(spatial_mid.attentions),
            )
        mid_block.resnets = spatial_mid.resnets
        mid_block.attentions = spatial_mid.attentions
        mid_block.motion_modules = adapter.mid_block.motion_modules
        given = {
            id(tensor)
            for module in (spatial_mid, adapter.mid_block)
            for tensor in (*module.parameters(), *module.buffers())
        }
        placeholders = [
            name
            for name, tensor in (*mid_block.named_parameters(), *mid_block.named_buffers())
            if id(tensor) not in given
        ]
        if placeholders:  # a diffusers version whose block holds more than these three parts
            raise RuntimeError(f"the draft mid block kept placeholder tensors: {placeholders[:3]}")
        return cls(
            tuple(block.motion_modules for block in adapter.down_blocks),
            tuple(block.motion_modules for block in adapter.up_blocks),
            mid_block,
        )

    def install(self, unet: UNetMotionModel) -> None:
        for block, modules in zip(unet.down_blocks, self.down, strict=True):
            block.motion_modules = modules
        for block, modules in zip(unet.up_blocks, self.up, strict=True):
            block.motion_modules = modules
        unet.mid_block = self.mid_block

    def is_installed_in(self, unet: UNetMotionModel) -> bool:
        return MotionModules.installed_in(unet) == self


def load_lightning_adapter(weights_dir: Path, device: Device) -> MotionAdapter:
    """The Lightning motion module, as the model card loads it: MotionAdapter's architecture with
    the checkpoint's state dict (strict, so a file for another architecture is refused). Its
    architecture is v3's plus the mid-block module, read from the v3 adapter's config so the tiny
    test weights get the tiny shape; built on the meta device and given the file's tensors."""
    config = MotionAdapter.load_config(WEIGHT_SETS["animatediff"].path(weights_dir))
    config["use_motion_mid_block"] = True
    with torch.device("meta"):
        adapter = MotionAdapter.from_config(config)
    lightning = WEIGHT_SETS["animatediff_lightning"]
    state_dict = load_file(lightning.path(weights_dir) / lightning.files[0])
    adapter.load_state_dict(state_dict, strict=True, assign=True)
    return adapter.to(device.torch_device, device.dtype).eval()


class DraftMode:
    """The draft pipeline: the standard pipeline's components, Lightning's motion modules, Euler."""

    def __init__(
        self, pipeline: AnimateDiffPipeline, standard: MotionModules, lightning: MotionModules
    ):
        self.pipeline = pipeline
        self.standard = standard
        self.lightning = lightning
        # The projections the LoRAs wrap, found once: diffusers' enable_lora / set_adapters /
        # disable_lora walk all of the UNet's thousands of modules each time (0.1-0.2 s a request
        # on this CPU); the calls below are what those functions do to each wrapped layer.
        parts = (*lightning.down, *lightning.up, lightning.mid_block.motion_modules)
        self.lora_layers = [
            module
            for part in parts
            for module in part.modules()
            if isinstance(module, BaseTunerLayer)
        ]

    @classmethod
    def load(
        cls, weights_dir: Path, device: Device, standard_pipeline: AnimateDiffPipeline
    ) -> DraftMode:
        unet = standard_pipeline.unet
        standard = MotionModules.installed_in(unet)
        lightning = MotionModules.around(unet, load_lightning_adapter(weights_dir, device))
        scheduler = EulerDiscreteScheduler.from_pretrained(
            WEIGHT_SETS["sd15"].path(weights_dir),
            subfolder="scheduler",
            **DRAFT_SCHEDULER_OVERRIDES,
        )
        # A second pipeline object over the same modules: the standard pipeline keeps its own
        # scheduler, and nothing is copied.
        pipeline = AnimateDiffPipeline(
            vae=standard_pipeline.vae,
            text_encoder=standard_pipeline.text_encoder,
            tokenizer=standard_pipeline.tokenizer,
            unet=unet,
            motion_adapter=None,
            scheduler=scheduler,
            feature_extractor=None,
            image_encoder=None,
        )
        pipeline.set_progress_bar_config(disable=True)
        # The LoRAs wrap the attention projections of whichever motion modules are installed when
        # they load: load them with Lightning's in place, so v3's are never touched.
        # The files hold UNet keys only (`unet.` prefix), so they go to the UNet directly, as
        # AnimateDiffPipeline.load_lora_weights would send them.
        lightning.install(unet)
        try:
            with warnings.catch_warnings():
                # peft warns at every adapter after the first that the model will hold several:
                # eight, one per camera move, is the point.
                warnings.filterwarnings(
                    "ignore", message="Already found a `peft_config`", category=UserWarning
                )
                for camera_motion, weight_set_name in CAMERA_MOTIONS.items():
                    unet.load_lora_adapter(
                        WEIGHT_SETS[weight_set_name].path(weights_dir),
                        weight_name=LORA_FILE,
                        prefix="unet",
                        adapter_name=camera_motion,
                        use_safetensors=True,
                    )
            unet.disable_lora()
        finally:
            standard.install(unet)
        return cls(pipeline, standard, lightning)

    @contextmanager
    def active(self, camera_motion: str, camera_motion_strength: float):
        """Lightning's motion modules in the UNet, and the camera move's LoRA at its strength, for
        the length of one request; the standard modules and no LoRA afterwards, even when the
        request fails or is cancelled (Cog's CancelationException passes through `finally`)."""
        unet = self.pipeline.unet
        # Set before the first LoRA is touched, so that one switched on before a failure is
        # switched off too; a draft without a camera move leaves them alone (they are off).
        lora_touched = camera_motion != NO_CAMERA_MOTION
        try:
            self.lightning.install(unet)
            if lora_touched:
                for layer in self.lora_layers:
                    layer.set_adapter([camera_motion])
                    layer.set_scale(camera_motion, camera_motion_strength)
                    layer.enable_adapters(True)
            yield self.pipeline
        finally:
            if lora_touched:
                for layer in self.lora_layers:
                    layer.enable_adapters(False)
            self.standard.install(unet)
