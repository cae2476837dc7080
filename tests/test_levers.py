"""The speed levers (pipelines/levers.py, docs/SPEED.md) are harmless: each one's frames equal the
eager pipeline's within a stated tolerance on the tiny weights, a lever that cannot apply says so
once and the model still runs, a bad setting fails setup naming it, and with every lever on and
COMPILE=1 the model runs through Cog's server and a second boot takes what the first compiled from
the compile cache (counted with dynamo's counters, which the worker logs)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch

import predict
from pipelines.common import pick_device
from pipelines.inputs import resolve_request
from pipelines.levers import COMPILE_CACHE_DIR, LeverError, Levers, logged_compile_counts
from pipelines.progress import Progress
from pipelines.tiers import lever_targets, load_tiers
from scripts.cog_server import CogServer, decode_data_uri
from tests.support.video_facts import read_video

# Float32 on the CPU: another attention kernel, fused matrices or inductor's fused kernels add up
# in another order, so frames in [0, 1] move by rounding (about 1e-6), never by more than this.
TOLERANCE = 1e-3
# Tier 3 hands SDXL's keyframe to SVD as an 8-bit image: a rounding-sized change can flip one of
# its levels (1/255), and SVD carries that into the clip: seen to move a clip's pixel by up to 2.05
# levels (with one OpenMP thread), so three at most.
TIER_TOLERANCE = {2: TOLERANCE, 3: 3 / 255, 4: TOLERANCE}
REQUESTS = {
    2: dict(tier=2, prompt="a red tram", width=64, height=64, num_frames=8, num_inference_steps=2),
    3: dict(tier=3, prompt="a red tram", width=64, height=64, num_frames=8, num_inference_steps=2),
    4: dict(tier=4, prompt="a red tram", width=64, height=64, num_frames=9, num_inference_steps=2),
}
EVERY_LEVER_BUT_COMPILE = dict(sdpa_backend="efficient", channels_last=True, fuse_qkv=True)


def frames_of(tiers: dict, tier: int, **extra) -> np.ndarray:
    request = resolve_request({**REQUESTS[tier], "seed": 7, **extra})
    unit = tiers[tier]
    return unit.generate(request, Progress(unit.progress_units(request), stream=io.StringIO()))


@pytest.fixture(scope="module")
def eager(tiny_weights_dir):
    """Every tier at diffusers' defaults, no lever applied: the frames each lever must keep."""
    tiers = load_tiers(tiny_weights_dir, pick_device())
    return {tier: frames_of(tiers, tier) for tier in REQUESTS} | {
        "draft": frames_of(tiers, 2, draft=True)
    }


@pytest.fixture(scope="module")
def tier_2_alone(tiny_weights_dir):
    return load_tiers(tiny_weights_dir, pick_device(), (2,))


def test_each_setting_is_read_from_its_variable_with_its_default(monkeypatch):
    for name in ("SDPA_BACKEND", "CHANNELS_LAST", "FUSE_QKV", "COMPILE", "COMPILE_MODE"):
        monkeypatch.delenv(name, raising=False)
    assert Levers.from_environment() == Levers()
    assert Levers() == Levers(sdpa_backend="auto", channels_last=False, fuse_qkv=False)
    monkeypatch.setenv("SDPA_BACKEND", "flash")
    monkeypatch.setenv("CHANNELS_LAST", "1")
    monkeypatch.setenv("COMPILE", "1")
    monkeypatch.setenv("COMPILE_MODE", "reduce-overhead")
    levers = Levers.from_environment()
    assert (levers.sdpa_backend, levers.channels_last, levers.compile) == ("flash", True, True)
    assert levers.compile_mode == "reduce-overhead" and not levers.fuse_qkv
    # The compile cache of one set of levers is never loaded for another.
    assert levers.key() != Levers().key()


@pytest.mark.parametrize(
    "name,value,allowed",
    [
        ("SDPA_BACKEND", "fast", "auto, flash, cudnn, efficient"),
        ("COMPILE", "yes", "0, 1"),
        ("COMPILE_MODE", "turbo", "reduce-overhead"),
    ],
)
def test_a_bad_setting_fails_setup_naming_the_variable_value_and_choices(
    monkeypatch, name, value, allowed
):
    monkeypatch.setenv(name, value)
    with pytest.raises(LeverError) as refused:
        predict.Runner().setup()
    message = str(refused.value)
    assert name in message and repr(value) in message and allowed in message, message


@pytest.mark.parametrize(
    "levers",
    [
        dict(sdpa_backend="flash"),
        dict(sdpa_backend="cudnn"),
        dict(sdpa_backend="efficient"),
        dict(channels_last=True),
        dict(fuse_qkv=True),
    ],
    ids=lambda levers: ",".join(f"{k}={v}" for k, v in levers.items()),
)
def test_each_lever_alone_keeps_tier_2s_frames(tier_2_alone, eager, levers):
    # On one load, each lever put on as setup puts it and taken off after (the lever matrix's way,
    # which test_levers_applied_to_loaded_models_act_as_at_setup_and_come_off_again holds to
    # setup's exactly): a load of tier 2 is most of a case's time.
    targets = lever_targets(2, tier_2_alone[2])
    for target in targets:
        target.apply(Levers(**levers))
    try:
        np.testing.assert_allclose(frames_of(tier_2_alone, 2), eager[2], rtol=0, atol=TOLERANCE)
        # Draft mode swaps Lightning's motion modules into the same UNet: the levers survive it.
        np.testing.assert_allclose(
            frames_of(tier_2_alone, 2, draft=True), eager["draft"], atol=TOLERANCE
        )
    finally:
        for target in targets:
            target.remove()


def test_every_lever_together_keeps_every_tiers_frames_and_says_once_what_does_not_apply(
    tiny_weights_dir, eager, capsys
):
    capsys.readouterr()
    tiers = load_tiers(tiny_weights_dir, pick_device(), levers=Levers(**EVERY_LEVER_BUT_COMPILE))
    setup_log = capsys.readouterr().out
    for tier in REQUESTS:
        np.testing.assert_allclose(
            frames_of(tiers, tier), eager[tier], atol=TIER_TOLERANCE[tier], err_msg=f"tier {tier}"
        )
    np.testing.assert_allclose(frames_of(tiers, 2, draft=True), eager["draft"], atol=TOLERANCE)
    # Tier 2's UNet keeps q, k and v apart (draft mode's LoRAs need them): said once, at setup.
    assert setup_log.count("FUSE_QKV: not applied to UNetMotionModel") == 1, setup_log
    # Wan's VAE has no model-wide fusion in diffusers, its transformers no 2-D convolutions.
    assert setup_log.count("FUSE_QKV: AutoencoderKLWan has no fused projections") == 1, setup_log
    # SVD's UNet and VAE have diffusers' fuse_qkv_projections, which fuses none of their older
    # attention layers: said, not claimed.
    for name in ("UNetSpatioTemporalConditionModel", "AutoencoderKLTemporalDecoder"):
        assert setup_log.count(f"FUSE_QKV: {name} has no fused projections") == 1, setup_log
    assert setup_log.count("CHANNELS_LAST: WanTransformer3DModel has no 2-D convolutions") == 2
    assert "(tier 4's draft)" in setup_log
    lines = setup_log.strip().splitlines()
    assert len(lines) == len(set(lines)), setup_log  # each said once
    # Nothing is said again at prediction time.
    frames_of(tiers, 4)
    assert "not applied" not in capsys.readouterr().out


def test_levers_applied_to_loaded_models_act_as_at_setup_and_come_off_again(
    tiny_weights_dir, eager
):
    """The lever matrix (bench/lever_matrix.py) measures each lever on one load of a tier: put on
    the loaded models, the levers give the frames of a tier loaded with them, and taken off, the
    eager frames and models again."""
    device, levers = pick_device(), Levers(**EVERY_LEVER_BUT_COMPILE)
    at_setup = load_tiers(tiny_weights_dir, device, levers=levers)
    tiers = load_tiers(tiny_weights_dir, device)
    for tier in REQUESTS:
        targets = lever_targets(tier, tiers[tier])
        models = [model for target in targets for model in (target.denoiser, *target.vaes)]
        eager_keys = [sorted(model.state_dict()) for model in models]
        for target in targets:
            target.apply(levers)
        assert any(sorted(m.state_dict()) != k for m, k in zip(models, eager_keys)), tier  # fused
        np.testing.assert_array_equal(frames_of(tiers, tier), frames_of(at_setup, tier))
        for target in targets:
            target.remove()
        np.testing.assert_array_equal(frames_of(tiers, tier), eager[tier], err_msg=f"tier {tier}")
        assert [sorted(model.state_dict()) for model in models] == eager_keys, tier
        for model in models:
            assert "forward" not in vars(model), tier  # no SDPA wrapper left
            assert all(
                layer.weight.is_contiguous()
                for layer in model.modules()
                if isinstance(layer, torch.nn.Conv2d)
            ), tier


def mp4_frames(result: dict, tmp_path) -> np.ndarray:
    assert result["status"] == "succeeded", result.get("error")
    path = tmp_path / "video.mp4"
    path.write_bytes(decode_data_uri(result["output"])[1])
    return read_video(path).frames.astype(np.int16)


def test_compiled_with_every_lever_through_cogs_server_and_a_second_boot_compiles_nothing(
    tiny_weights_dir, server, tmp_path
):
    """Tier 4 (one compiled block, the cheapest compile) with COMPILE=1 and every other lever on,
    booted twice on the same weights folder, each boot with an empty inductor cache of its own so
    that only our compile cache can carry kernels from the first boot to the second."""
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, weights)
    request = {**REQUESTS[4], "seed": 7}
    eager_video = mp4_frames(server.predict(request), tmp_path)
    env = dict(
        LOADED_TIERS="4",
        COMPILE="1",
        SDPA_BACKEND="efficient",
        CHANNELS_LAST="1",
        FUSE_QKV="1",
    )
    counts = []
    for boot in ("first", "second"):
        log = tmp_path / f"{boot}-boot.log"
        inductor = tmp_path / f"{boot}-inductor"
        cog = CogServer(weights, log, extra_env={**env, "TORCHINDUCTOR_CACHE_DIR": str(inductor)})
        try:
            cog.wait_until_ready()
            video = mp4_frames(cog.predict(request), tmp_path)
        finally:
            cog.stop()
        # The same frames as eager's to within a level or two of 255 after rounding and encoding.
        gap = np.abs(video - eager_video)
        assert gap.mean() < 0.5 and gap.max() <= 8, (boot, gap.mean(), gap.max())
        counts.append(logged_compile_counts(log.read_text()))
        assert list((weights / COMPILE_CACHE_DIR).glob("torch-*-cpu-*.bin")), boot
    first, second = counts
    assert first and first[-1][0] > 0, first  # the first boot compiled and wrote the cache
    # The second loaded it: every graph came from the cache, none was compiled again.
    assert second and second[-1][0] == 0 and second[-1][1] >= first[-1][0], second
