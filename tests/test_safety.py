"""pipelines/safety.py in-process: which frames and which parts of a frame the checker sees, and
what a flag does. Through the server (a checker that flags everything):
test_server_language_safety.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.common import pick_device
from pipelines.safety import SafetyChecker, UnsafeContentError, covering_squares, frames_to_check

MAGENTA, BLUE = (255, 0, 255), (20, 60, 200)


@pytest.mark.parametrize(
    "num_frames, checked",
    [
        (16, [0, 4, 8, 12, 15]),
        (25, [0, 4, 8, 12, 16, 20, 24]),
        (8, [0, 4, 7]),
        (9, [0, 4, 8]),
        (32, [*range(0, 32, 4), 31]),
    ],
)
def test_every_fourth_frame_and_the_last_are_checked(num_frames, checked):
    assert frames_to_check(num_frames) == checked


@pytest.mark.parametrize(
    "width, height, count",
    [(512, 512, 1), (1024, 576, 2), (576, 1024, 2), (216, 72, 3), (1024, 64, 16), (96, 64, 2)],
)
def test_the_squares_cover_every_pixel_of_the_frame(width, height, count):
    boxes = covering_squares(width, height)
    assert len(boxes) == count
    covered = np.zeros((height, width), bool)
    for left, top, right, bottom in boxes:
        assert (
            right - left == bottom - top == min(width, height)
            and right <= width
            and bottom <= height
        )
        covered[top:bottom, left:right] = True
    assert covered.all()


def solid(colour, size=(72, 72)) -> Image.Image:
    return Image.new("RGB", size, colour)


@pytest.fixture(scope="module")
def checker(tiny_weights_dir) -> SafetyChecker:
    """The tiny checker, taught one concept: a magenta picture. Its first concept embedding is the
    picture's own embedding, with a threshold halfway between it and a blue picture's similarity."""
    loaded = SafetyChecker.load(tiny_weights_dir, pick_device())
    model = loaded.checker

    def embedding(image):
        pixels = loaded.feature_extractor(images=[image], return_tensors="pt").pixel_values.to(
            model.dtype
        )
        with torch.no_grad():
            return model.visual_projection(model.vision_model(pixels)[1])[0]

    magenta, blue = embedding(solid(MAGENTA)), embedding(solid(BLUE))
    similarity = torch.nn.functional.cosine_similarity(magenta, blue, dim=0).item()
    assert similarity < 0.999, "the tiny encoder cannot tell these colours apart"
    with torch.no_grad():
        model.concept_embeds[0] = magenta
        model.concept_embeds_weights[0] = (1 + similarity) / 2
    return loaded


def test_the_checker_flags_what_its_concepts_match(checker):
    assert checker.flagged([solid(MAGENTA), solid(BLUE), solid(MAGENTA, (100, 300))]) == [
        True,
        False,
        True,
    ]


def test_the_edges_of_a_wide_frame_are_checked_not_only_its_centre(checker):
    """A 3:1 frame, magenta in its left third: the centre square the stock feature extractor would
    keep is all blue; one of the covering squares is all magenta."""
    frame = solid(BLUE, (216, 72))
    frame.paste(solid(MAGENTA), (0, 0))
    assert checker.flagged([frame.crop((72, 0, 144, 72))]) == [False]  # what a centre crop sees
    assert checker.flagged([frame]) == [True]


def test_a_flagged_frame_refuses_the_clip_naming_it(checker, capsys):
    frames = np.stack([np.asarray(solid(BLUE))] * 16)
    checker.check_frames(frames)
    assert "Safety checker: frames 1, 5, 9, 13, 16 of 16 passed." in capsys.readouterr().out
    flagged = frames.copy()
    flagged[8] = np.asarray(solid(MAGENTA))
    with pytest.raises(
        UnsafeContentError, match=r"^the safety checker flagged frame 9 of 16 as possibly not safe"
    ):
        checker.check_frames(flagged)
    # The sample's limit: a picture on screen for one unchecked frame only is not seen.
    between = frames.copy()
    between[9] = np.asarray(solid(MAGENTA))
    checker.check_frames(between)


def test_a_flagged_start_frame_names_where_it_came_from(checker):
    checker.check_start_frame(solid(BLUE, (128, 64)), "your image")
    with pytest.raises(
        UnsafeContentError, match=r"^the safety checker flagged the start frame \(your image\)"
    ):
        checker.check_start_frame(solid(MAGENTA, (128, 64)), "your image")
