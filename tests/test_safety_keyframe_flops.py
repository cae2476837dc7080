"""scripts/safety_keyframe_flops.py: the checker's and the keyframe's FLOPs, counted on the meta
device."""

from __future__ import annotations

from scripts import safety_keyframe_flops as flops


def test_the_checked_squares_per_video_follow_the_sample_and_the_frame_shape():
    assert flops.squares_checked(2) == 5  # frames 1, 5, 9, 13, 16 of 16, one square each
    assert flops.squares_checked(3) == 2 * (
        7 + 1
    )  # 7 of 25 frames and the start frame, two squares each
    assert (
        flops.squares_checked(2, every_frame=True) == 16
        and flops.squares_checked(3, every_frame=True) == 52
    )


def test_the_counts_agree_with_the_reference_counts_at_the_old_keyframe_size():
    """At 1024×576 the SDXL UNet step and the VAE decode are the FLOPs docs/BENCHMARKS.md's
    reference gives (7.28 and 5.75 TFLOP): the same counting, so the new figures compare."""
    report = flops.report()
    assert "| 1024×576 (the video size, before) | 7.28 | 182.1 | 5.75 | 187.8 |" in report
    assert "| 1344×768 (SDXL's bucket for 16:9, now) |" in report
    assert "One checked square: 162.0 GFLOP." in report
