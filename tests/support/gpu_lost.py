"""predict.Runner after its GPU broke, for the health check tests.

RunnerWithALostGpu: what healthcheck() meets once a fatal CUDA error (an illegal memory access, an
Xid) has broken the context and every CUDA call fails. The models load as usual; then the device
becomes one no CUDA call can reach on any machine (an ordinal past the last GPU, or no driver at
all), so the same check fails the same way on a CPU-only machine and on a GPU box.

RunnerWithAHungGpu: a GPU whose sync never returns; its health check does not either.
"""

from __future__ import annotations

import torch

from pipelines.common import Device
from predict import Runner


class RunnerWithALostGpu(Runner):
    def setup(self) -> None:
        super().setup()
        self.device = Device(torch.device("cuda", 99), torch.float16)


class RunnerWithAHungGpu(Runner):
    """predict.Runner whose GPU hangs: the health check's sync never returns (a GPU stuck after an
    Xid does this)."""

    def healthcheck(self) -> bool:
        import time

        time.sleep(3600)
        return True
