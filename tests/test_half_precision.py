"""Half precision as in production, on a CPU: the MODEL_DTYPE setting, both tiers through Cog's
server in bfloat16 (it takes every cast between half and single precision that float16 takes on a
GPU, at a usable speed on a CPU), and the float16-only path diffusers takes for SVD's VAE."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

import predict
from pipelines.common import DTYPES, Device, DeviceError, pick_device
from pipelines.inputs import resolve_request
from pipelines.progress import Progress
from pipelines.tier2 import TextToVideo
from pipelines.tier3 import KeyframeToVideo, load_animation_pipeline, load_keyframe_pipeline
from pipelines.video import to_uint8
from scripts.cog_server import CogServer, decode_data_uri
from tests.support.video_facts import read_video

CPU = torch.device("cpu")


def png_data_uri(size=(300, 200)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 220)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def quiet(tier, request) -> Progress:
    return Progress(tier.progress_units(request), stream=io.StringIO())


def psnr(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((ours.astype(np.float64) - reference) ** 2)))


# --- the setting -----------------------------------------------------------------------------


def test_model_dtype_picks_the_precision(monkeypatch, capsys):
    monkeypatch.delenv("MODEL_DTYPE", raising=False)
    assert pick_device().dtype == (torch.float16 if torch.cuda.is_available() else torch.float32)
    for name, dtype in DTYPES.items():
        monkeypatch.setenv("MODEL_DTYPE", name)
        assert pick_device().dtype == dtype
    if not torch.cuda.is_available():
        # float16 runs on a CPU (it is how the float16-only paths are tested below) but says it is
        # slow.
        monkeypatch.setenv("MODEL_DTYPE", "float16")
        capsys.readouterr()
        pick_device()
        assert "MODEL_DTYPE=float16 on a CPU runs tens of times slower" in capsys.readouterr().out


def test_a_bad_model_dtype_fails_setup_before_any_weights_are_read(monkeypatch, tmp_path):
    # An empty weights folder: reaching the weights would fail differently (files missing).
    monkeypatch.setenv("WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MODEL_DTYPE", "fp16")
    with pytest.raises(DeviceError) as error:
        predict.Runner().setup()
    assert str(error.value) == (
        "MODEL_DTYPE='fp16' is not a precision this model runs in; allowed: float16, bfloat16, "
        "float32 (or unset: float16 on a GPU, float32 on a CPU)"
    )


def test_a_bad_model_dtype_is_reported_by_the_server(tiny_weights_dir, tmp_path):
    server = CogServer(tiny_weights_dir, tmp_path / "server.log", extra_env={"MODEL_DTYPE": "half"})
    try:
        with pytest.raises(RuntimeError, match="Cog setup failed") as error:
            server.wait_until_ready(timeout=120)
        assert "MODEL_DTYPE='half' is not a precision this model runs in" in str(error.value)
    finally:
        server.stop()


def test_non_finite_frames_fail_instead_of_turning_black():
    frames = np.full((2, 8, 8, 3), 0.5, dtype=np.float32)
    frames[1, 2, 3] = np.nan
    with pytest.raises(FloatingPointError, match="3 NaN or infinite values among 384"):
        to_uint8(frames)


# --- both tiers through Cog's server in bfloat16 ------------------------------------------------


@pytest.fixture
def bf16_server(cog_servers):
    """The shared server in bfloat16 (another module asking for MODEL_DTYPE=bfloat16 gets the
    same one)."""
    return cog_servers.get(extra_env={"MODEL_DTYPE": "bfloat16"})


def test_setup_loads_every_model_in_bfloat16(bf16_server):
    assert "on cpu (torch.bfloat16; tier 4 in torch.bfloat16)" in bf16_server.log_path.read_text()


BF16_REQUESTS = {
    "tier2": dict(
        tier=2,
        prompt="a paper boat on a rainy street",
        width=64,
        height=64,
        num_frames=8,
        num_inference_steps=2,
        seed=11,
    ),
    # The caller's start image: a float32 tensor from the image processor meets the bf16 VAE and
    # CLIP image encoder. (The keyframe tier 3 makes from text reaches SVD the same way, as an
    # image; the keyframe itself in bfloat16 is held in-process, below.)
    "tier3-image": dict(
        tier=3,
        image=png_data_uri(),
        width=128,
        height=64,
        num_frames=8,
        num_inference_steps=2,
        seed=11,
    ),
    # Wan's transformer and UMT5 in bfloat16 beside its float32 VAE, from text and from an image.
    "tier4": dict(
        tier=4, prompt="a red tram", width=64, height=64, num_frames=9, num_inference_steps=2
    ),
    "tier4-image": dict(
        tier=4, image=png_data_uri(), width=64, height=64, num_frames=9, num_inference_steps=2
    ),
}


@pytest.mark.parametrize("name", BF16_REQUESTS)
def test_both_tiers_run_in_bfloat16_through_the_server(bf16_server, tmp_path, name):
    inputs = BF16_REQUESTS[name]
    result = bf16_server.predict(inputs)
    assert result["status"] == "succeeded", result.get("error")
    path = tmp_path / "out.mp4"
    path.write_bytes(decode_data_uri(result["output"])[1])
    video = read_video(path)
    assert (video.num_frames, video.width, video.height) == (
        inputs["num_frames"],
        inputs["width"],
        inputs["height"],
    )
    # A NaN fails the prediction (to_uint8); an all-zero or saturated decode would be flat frames.
    # Random weights give noise: every frame varies across its pixels.
    spread = video.frames.reshape(video.num_frames, -1).std(axis=1)
    # Wan decodes its first frame from one latent frame alone: less spread, still far from flat.
    assert spread.min() > 5, spread


# --- in-process: bfloat16 against float32 -------------------------------------------------------


def load_tier2(weights_dir, dtype) -> TextToVideo:
    return TextToVideo.load(weights_dir, Device(CPU, dtype))


def test_bfloat16_frames_stay_close_to_float32(tiny_weights_dir):
    """Rounding to 8 bits of mantissa moves the frames a little; a cast that lost a scale factor or
    fed one model another's dtype would move them a lot. (Measured: tier 2 44 dB, keyframe 46 dB.)
    SVD's animation is not compared: at test sizes its tiny UNet normalises 1 channel over 2 pixels
    at the lowest resolution, which amplifies any rounding (fp16 there is as far from fp32 as
    bf16)."""
    request = resolve_request(
        dict(
            tier=2,
            prompt="a lighthouse in a storm",
            width=64,
            height=64,
            num_frames=8,
            num_inference_steps=2,
            seed=5,
        )
    )
    frames = {}
    for dtype in (torch.float32, torch.bfloat16):
        tier = load_tier2(tiny_weights_dir, dtype)
        frames[dtype] = tier.generate(request, quiet(tier, request))
    assert np.isfinite(frames[torch.bfloat16]).all()
    apart = psnr(frames[torch.bfloat16], frames[torch.float32])
    assert apart > 35, f"tier 2's frames in bfloat16 are {apart:.1f} dB from float32's"

    request = resolve_request(
        dict(
            tier=3,
            prompt="a red tram on a bridge",
            width=128,
            height=64,
            num_frames=8,
            num_inference_steps=2,
            seed=5,
        )
    )
    keyframes = {}
    for dtype in (torch.float32, torch.bfloat16):
        tier = KeyframeToVideo(
            load_keyframe_pipeline(tiny_weights_dir, Device(CPU, dtype)), None, Device(CPU, dtype)
        )
        keyframes[dtype] = np.asarray(tier.render_keyframe(request, quiet(tier, request))) / 255
    apart = psnr(keyframes[torch.bfloat16], keyframes[torch.float32])
    assert apart > 35, f"tier 3's keyframe in bfloat16 is {apart:.1f} dB from float32's"


# --- float16 on the CPU: the path diffusers takes only in float16 ------------------------------


@pytest.fixture(scope="module")
def fp16_animation(tiny_weights_dir):
    device = Device(CPU, torch.float16)
    return KeyframeToVideo(None, load_animation_pipeline(tiny_weights_dir, device), device)


SVD_REQUEST = dict(
    tier=3, prompt="x", width=64, height=64, num_frames=8, num_inference_steps=1, seed=3
)
START_FRAME = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))


def test_float16_encodes_the_start_frame_in_float32_and_returns_the_vae_to_float16(fp16_animation):
    # SVD's VAE is force_upcast: in float16 diffusers encodes the start frame in float32.
    vae = fp16_animation.animation_pipeline.vae
    encoded_in = []
    hook = vae.encoder.register_forward_pre_hook(
        lambda module, args: encoded_in.append(args[0].dtype)
    )
    try:
        request = resolve_request(SVD_REQUEST)
        latents = fp16_animation.animate(START_FRAME, request, quiet(fp16_animation, request))
    finally:
        hook.remove()
    assert encoded_in == [torch.float32]
    assert vae.dtype == torch.float16 and latents.dtype == torch.float16
    assert torch.isfinite(latents).all()


def test_float16_vae_is_restored_when_the_encode_fails(fp16_animation):
    """A cancel or error while the VAE is upcast must not leave it in float32 for later
    predictions."""
    vae = fp16_animation.animation_pipeline.vae

    def fail(module, args):
        raise RuntimeError("injected while the VAE is in float32")

    hook = vae.encoder.register_forward_pre_hook(fail)
    try:
        request = resolve_request(SVD_REQUEST)
        with pytest.raises(RuntimeError, match="injected while the VAE is in float32"):
            fp16_animation.animate(START_FRAME, request, quiet(fp16_animation, request))
    finally:
        hook.remove()
    assert vae.dtype == torch.float16


def test_tier_4_runs_in_bfloat16_when_the_device_asks_for_float16(tiny_weights_dir):
    """float16 is the GPU's default precision (tiers 2 and 3 publish float16 weights); Wan 2.2 is
    run in bfloat16, its VAE in float32 (diffusers' WanPipeline example), so tier 4 takes
    bfloat16 for every half precision and leaves float32 alone."""
    from pipelines.tier4 import WanTextImageToVideo

    tier = WanTextImageToVideo.load(tiny_weights_dir, Device(torch.device("cpu"), torch.float16))
    pipeline = tier.text_pipeline
    assert pipeline.transformer.dtype == pipeline.text_encoder.dtype == torch.bfloat16
    assert tier.draft_transformer.dtype == torch.bfloat16
    assert pipeline.vae.dtype == torch.float32
    assert tier.image_pipeline.transformer is pipeline.transformer
    single = WanTextImageToVideo.load(tiny_weights_dir, Device(torch.device("cpu"), torch.float32))
    assert single.text_pipeline.transformer.dtype == torch.float32
