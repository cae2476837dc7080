"""tests/support's server harness refuses what it cannot serve with an error that says what was
wrong, before it starts anything: a moved or misspelled runner fails at once, not as a setup failure
deep in Cog's log."""

from __future__ import annotations

import re

import pytest

from scripts.cog_server import CogServer, decode_data_uri


@pytest.mark.parametrize(
    "predictor", ["tests/support/no_such_file.py:Runner", "predict.py", "predict.py:"]
)
def test_a_predictor_that_is_not_file_and_class_in_the_repo_is_refused(tmp_path, predictor):
    with pytest.raises(
        ValueError, match=rf"must be FILE:CLASS .*, not {re.escape(repr(predictor))}"
    ):
        CogServer(tmp_path, tmp_path / "server.log", predictor=predictor)
    assert not (tmp_path / "server.log").exists()  # no server was started


def test_only_a_base64_data_uri_is_decoded():
    assert decode_data_uri("data:video/mp4;base64,AAEC") == ("video/mp4", b"\x00\x01\x02")
    with pytest.raises(
        ValueError, match=re.escape("not a base64 data URI: 'https://replicate.delivery/a.mp4'")
    ):
        decode_data_uri("https://replicate.delivery/a.mp4")
