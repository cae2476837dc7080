"""What every tier shares: the device and precision, seeding, prompt length checks, and decoding
latents into frames a chunk at a time."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipelines.progress import Progress

if TYPE_CHECKING:
    from diffusers.video_processor import VideoProcessor


@dataclass(frozen=True)
class Device:
    torch_device: torch.device
    dtype: torch.dtype

    @property
    def is_gpu(self) -> bool:
        return self.torch_device.type == "cuda"


# The precision the models run in: `MODEL_DTYPE` names it; unset, half precision on a GPU (the
# weights are published as fp16 variants) and fp32 on a CPU. bfloat16 runs the half-precision paths
# (every cast between half and single precision) on a CPU at a usable speed; float16 on a CPU runs
# too, tens of times slower (torch's CPU fp16 kernels), and is allowed because it is the only way
# without a GPU to take the paths diffusers reserves for float16, such as SVD's VAE upcast.
MODEL_DTYPE_ENV = "MODEL_DTYPE"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class DeviceError(RuntimeError):
    """The precision asked for cannot be used; the message says what is allowed."""


def pick_device() -> Device:
    """The GPU when there is one, else the CPU, in the precision `MODEL_DTYPE` names (see above)."""
    on_gpu = torch.cuda.is_available()
    torch_device = torch.device("cuda" if on_gpu else "cpu")
    requested = os.environ.get(MODEL_DTYPE_ENV, "")
    if not requested:
        return Device(torch_device, torch.float16 if on_gpu else torch.float32)
    if requested not in DTYPES:
        raise DeviceError(
            f"{MODEL_DTYPE_ENV}={requested!r} is not a precision this model runs in; allowed: "
            f"{', '.join(DTYPES)} (or unset: float16 on a GPU, float32 on a CPU)"
        )
    if requested == "float16" and not on_gpu:
        print(
            f"WARNING: {MODEL_DTYPE_ENV}=float16 on a CPU runs tens of times slower than bfloat16 "
            "or float32; it is meant for reproducing a GPU's float16 numerics.",
            flush=True,
        )
    return Device(torch_device, DTYPES[requested])


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: diffusers draws the initial noise on it and moves it to the device, so the
    same seed gives the same starting noise on any GPU model or on the CPU."""
    return torch.Generator(device="cpu").manual_seed(seed)


def log_prompt_truncation(tokenizer, text: str, field_name: str) -> None:
    """CLIP reads `model_max_length` tokens (77, with start and end); tell the user what was cut."""
    if not text:
        return
    limit = tokenizer.model_max_length
    ids = tokenizer(text, truncation=False, add_special_tokens=True).input_ids
    if len(ids) > limit:
        kept = tokenizer.decode(ids[1 : limit - 1], skip_special_tokens=True)
        print(
            f"Note: {field_name} is {len(ids)} tokens; CLIP reads the first {limit}, so the text "
            f"after {kept[-40:]!r} was not used.",
            flush=True,
        )


@torch.inference_mode()
def decode_in_chunks(
    latents: torch.Tensor,
    decode_latents: Callable[[torch.Tensor], torch.Tensor],
    video_processor: VideoProcessor,
    progress: Progress,
    *,
    frames_axis: int,
    chunk_frames: int,
) -> np.ndarray:
    """Latents to float frames in [0, 1], num_frames × height × width × 3, decoded `chunk_frames`
    frames at a time (the tier's choice: what its VAE may hold at once), with progress per chunk.
    `decode_latents` is the pipeline's own, given one chunk; it returns (batch, channels, frames,
    height, width), as the pipeline would decode the whole clip. `frames_axis` is where the frames
    are in `latents`: AnimateDiff's are (batch, channels, frames, ...), SVD's (batch, frames,
    ...)."""
    chunks = []
    for chunk in latents.split(chunk_frames, dim=frames_axis):
        chunks.append(decode_latents(chunk))
        progress.advance("decoding", chunk.shape[frames_axis])
    video = torch.cat(chunks, dim=2)
    return video_processor.postprocess_video(video=video, output_type="np")[0]


def free_memory(device: Device, error: BaseException) -> None:
    """Give back what a failed or cancelled prediction allocated, so the next one starts from the
    same memory level as the first. The error's traceback still holds the frames of the stages it
    went through, and with them their tensors (latents, decoded chunks): neither gc nor the CUDA
    cache can free those while the error is being reported, so drop the frames' locals first."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        _drop_locals(error.__traceback__)
        error = error.__cause__ or error.__context__
    gc.collect()
    if device.is_gpu:
        torch.cuda.empty_cache()


def _drop_locals(tb) -> None:
    while tb is not None:
        frame = tb.tb_frame
        try:
            frame.clear()
        except RuntimeError:
            pass  # a frame still running (run() itself) keeps its locals
        else:
            # diffusers' loops call locals(), which leaves a snapshot dict on the frame that
            # clear() does not empty (Python 3.11); reading f_locals again syncs it to the
            # cleared frame, i.e. empties it.
            frame.f_locals  # noqa: B018
        tb = tb.tb_next


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None


def release_freed_heap() -> None:
    """Hand memory that Python and torch freed back to the OS after each prediction. glibc keeps
    freed pages in its malloc arenas (one per thread that allocated, unless MALLOC_ARENA_MAX, which
    the image sets to 1 in cog.yaml); this trims what it can. docs/PUBLISHING.md "Memory over a long
    run" has the soak figures."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def check_gpu(device: Device) -> None:
    """A tiny kernel and a sync: after a fatal CUDA error (an illegal memory access, an Xid) every
    later CUDA call fails. Raises with CUDA's own message, which Cog puts in /health-check's
    `user_healthcheck_error`, so whoever runs the container sees why it is UNHEALTHY."""
    if not device.is_gpu:
        return
    try:
        probe = torch.ones(8, device=device.torch_device)
        torch.cuda.synchronize(device.torch_device)
        total = float(probe.sum().item())
    except Exception as error:  # any failure of the probe means the GPU cannot serve a prediction
        raise RuntimeError(f"the GPU no longer answers: {error}") from error
    if total != 8.0:
        raise RuntimeError(f"the GPU no longer computes correctly: 8 ones summed to {total}")


NVIDIA_DRIVER_FILE = Path(
    "/proc/driver/nvidia/version"
)  # present wherever an NVIDIA driver is loaded


def require_usable_gpu(driver_file: Path = NVIDIA_DRIVER_FILE) -> None:
    """Refuse to start on the CPU when the machine has an NVIDIA GPU that torch cannot use. The
    usual cause is a driver older than the CUDA torch was built for (torch 2.14.1 is a CUDA 13.0
    build: driver 580 or newer); serving from the CPU instead would bill minutes per video."""
    if torch.cuda.is_available() or not driver_file.exists():
        return
    driver = (
        driver_file.read_text(errors="replace").splitlines()[0].strip()
        if driver_file.stat().st_size
        else "?"
    )
    raise RuntimeError(
        f"an NVIDIA driver is loaded ({driver}) but torch {torch.__version__}, built for CUDA "
        f"{torch.version.cuda}, cannot use the GPU; CUDA 13.0 needs driver 580 or newer "
        f'(docs/PUBLISHING.md "CUDA and the driver")'
    )
