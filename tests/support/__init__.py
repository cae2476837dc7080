"""What the tests share and are not tests themselves: Cog's real server and a webhook receiver
(cog_server), run()'s declared inputs (declared_inputs), what a user checks in a video file
(video_facts), the storyboard shot (long_shot) and runners whose GPU broke (gpu_lost).

pyproject.toml's `pythonpath = ["."]` puts the repository root on the path, so tests import these
as `tests.support.<module>`."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
