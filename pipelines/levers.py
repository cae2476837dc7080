"""Speed levers: settings read from the environment once at setup, applied to a tier's modules at
load. docs/SPEED.md names each setting, its default and why; cog.yaml lists them beside its
`environment`.

A tier is wired with one call, `apply_levers(levers, denoiser, vaes, log)`, whatever its models:
the functions take modules and find what they need in them (attention, repeated blocks).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

Log = Callable[[str], None]

# Each backend first, then the others as fallbacks where a shape or device is not supported
# (torch's `sdpa_kernel(..., set_priority=True)` tries them in order; MATH always applies).
SDPA_BACKENDS = {
    "auto": None,  # torch's own choice per call
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}
FALLBACK_ORDER = [
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]
# torch.compile's modes (torch.compile's docstring). "default" compiles without CUDA graphs.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SWITCHES = {"0": False, "1": True}
# Repeated blocks of the denoisers that do not declare diffusers' `_repeated_blocks`
# (ModelMixin.compile_repeated_blocks): UNetMotionModel and SVD's UNet in diffusers 0.42.1.
REPEATED_BLOCKS = ("BasicTransformerBlock", "TemporalBasicTransformerBlock")
COMPILE_CACHE_DIR = "compile-cache"


class LeverError(ValueError):
    """A lever's environment variable holds a value it does not take."""


def _read(name: str, default: str, choices: Iterable[str]) -> str:
    value = os.environ.get(name, default).strip()
    choices = tuple(choices)
    if value not in choices:
        raise LeverError(f"{name}={value!r} is not one of {', '.join(choices)} (default {default})")
    return value


@dataclass(frozen=True)
class Levers:
    """Every lever, as setup read it. The defaults are docs/SPEED.md's."""

    sdpa_backend: str = "auto"
    channels_last: bool = False
    fuse_qkv: bool = False
    compile: bool = False
    # Empty: each tier's own mode (the `compile_mode` its load passes to apply_levers).
    compile_mode: str = ""

    @classmethod
    def from_environment(cls) -> Levers:
        return cls(
            sdpa_backend=_read("SDPA_BACKEND", "auto", SDPA_BACKENDS),
            channels_last=SWITCHES[_read("CHANNELS_LAST", "0", SWITCHES)],
            fuse_qkv=SWITCHES[_read("FUSE_QKV", "0", SWITCHES)],
            compile=SWITCHES[_read("COMPILE", "0", SWITCHES)],
            compile_mode=_read("COMPILE_MODE", "", ("", *COMPILE_MODES)),
        )

    def key(self) -> str:
        """A short fingerprint: the compile cache is valid only for the levers that made it."""
        text = ",".join(f"{name}={value}" for name, value in sorted(asdict(self).items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def apply_levers(
    levers: Levers,
    denoiser: torch.nn.Module,
    vaes: Iterable[torch.nn.Module],
    log: Log = print,
    *,
    compile_mode: str = "default",
    fuse_denoiser: str | None = None,
    label: str = "",
) -> None:
    """Apply every lever to one model's denoiser (UNet or transformer) and its VAEs. A lever that
    cannot apply says so in `log`, once, and the model runs without it. `fuse_denoiser` is the
    reason the denoiser's q/k/v must stay apart (None: they may be fused); `label` names the
    model in the log where its class alone would not (two transformers of one class)."""
    if label:
        log = functools.partial(_labelled, log, label)
    name = type(denoiser).__name__
    vaes = list(vaes)
    if levers.channels_last:
        for module in (denoiser, *vaes):
            to_channels_last(module, log)
    if levers.fuse_qkv:
        if fuse_denoiser is not None:
            log(f"FUSE_QKV: not applied to {name}: {fuse_denoiser}")
        else:
            fuse_qkv(denoiser, log)
        for vae in vaes:
            fuse_qkv(vae, log)
    # The backend wraps the whole denoiser's forward, outside the compiled regions.
    set_sdpa_backend(denoiser, levers.sdpa_backend)
    if levers.compile:
        compile_repeated_blocks(denoiser, levers.compile_mode or compile_mode, log)


def _labelled(log: Log, label: str, message: str) -> None:
    log(f"{message} ({label})")


def to_channels_last(module: torch.nn.Module, log: Log) -> None:
    """The 2-D convolutions' weights in channels-last order (what cuDNN's fastest kernels read).
    Only those: a model that also holds 3-D convolutions (SVD's UNet, Wan's VAE) cannot be
    converted whole."""
    convolutions = [layer for layer in module.modules() if isinstance(layer, torch.nn.Conv2d)]
    if not convolutions:
        log(f"CHANNELS_LAST: {type(module).__name__} has no 2-D convolutions; not applied")
    for layer in convolutions:
        layer.to(memory_format=torch.channels_last)


def fuse_qkv(module: torch.nn.Module, log: Log) -> None:
    """q, k and v as one matrix product: the model's own `fuse_qkv_projections` (UNets, VAEs), or
    each attention's `fuse_projections` where the model has only those (Wan's transformer)."""
    fuse = getattr(module, "fuse_qkv_projections", None)
    if fuse is not None:
        fuse()
    else:
        for layer in module.modules():
            if callable(getattr(layer, "fuse_projections", None)):
                layer.fuse_projections()
    # A model-wide fuse_qkv_projections can fuse nothing: diffusers' mixin fuses only its newer
    # attention classes, and SVD's UNet and VAE hold the older `Attention` alone.
    if not any(getattr(layer, "fused_projections", False) for layer in module.modules()):
        log(f"FUSE_QKV: {type(module).__name__} has no fused projections in diffusers; not applied")


def set_sdpa_backend(module: torch.nn.Module, backend: str) -> None:
    """Every forward of `module` runs under the chosen backend, the others as fallbacks."""
    first = SDPA_BACKENDS[backend]
    if first is None:
        return
    order = [first, *(other for other in FALLBACK_ORDER if other != first)]
    forward = module.forward

    @functools.wraps(forward)
    def forward_with_backend(*args, **kwargs):
        with sdpa_kernel(order, set_priority=True):
            return forward(*args, **kwargs)

    forward_with_backend.sdpa_order = order  # how remove_levers knows the wrapper for ours
    module.forward = forward_with_backend


def remove_levers(denoiser: torch.nn.Module, vaes: Iterable[torch.nn.Module]) -> None:
    """Undo every lever but COMPILE on a loaded model, back to the frames of one loaded without
    them: the lever matrix (bench/lever_matrix.py) measures each lever on one load of a tier
    instead of loading it again per lever. Compiled blocks cannot be undone."""
    if hasattr(denoiser.forward, "sdpa_order"):
        del denoiser.forward  # the instance's wrapper; the class's forward shows through again
    for module in (denoiser, *vaes):
        for layer in module.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.to(memory_format=torch.contiguous_format)
        fused = [layer for layer in module.modules() if getattr(layer, "fused_projections", False)]
        if not fused:
            continue  # (an unfused model's unfuse_qkv_projections fails)
        unfuse = getattr(module, "unfuse_qkv_projections", None)
        if unfuse is not None:
            unfuse()  # the older models put back their processors but keep the fused copies
        for layer in fused:
            for name in ("to_qkv", "to_kv", "to_added_qkv", "to_added_kv"):
                if hasattr(layer, name):
                    delattr(layer, name)
            layer.fused_projections = False


def compile_repeated_blocks(module: torch.nn.Module, mode: str, log: Log) -> int:
    """Regional compilation: each repeated block is compiled once and its code reused by every
    copy, so the compile takes seconds where the whole UNet takes minutes. Returns the blocks
    compiled."""
    names = set(getattr(module, "_repeated_blocks", None) or REPEATED_BLOCKS)
    blocks = [block for block in module.modules() if type(block).__name__ in names]
    if not blocks:
        log(
            f"COMPILE: {type(module).__name__} has none of the blocks {sorted(names)}; not compiled"
        )
        return 0
    for block in blocks:
        # Not fullgraph: blocks of other widths recompile, and past dynamo's limit a block runs
        # eager rather than failing the prediction.
        block.compile(mode=mode)
    log(f"COMPILE: {len(blocks)} blocks of {type(module).__name__} compiled ({mode})")
    return len(blocks)


# The line setup and each compiling prediction log: what a publisher reads to see the cache work
# (a boot served from it compiles 0 graphs), and what the GPU check and the tests count.
COUNTS_LINE = "Compile cache: {compiled} graphs compiled, {from_cache} taken from the cache"
COUNTS_PATTERN = re.compile(r"Compile cache: (\d+) graphs compiled, (\d+) taken from the cache")


def logged_compile_counts(log_text: str) -> list[tuple[int, int]]:
    """Every (graphs compiled, graphs taken from the cache) COUNTS_LINE in a log, in order."""
    return [(int(compiled), int(cached)) for compiled, cached in COUNTS_PATTERN.findall(log_text)]


class CompileCache:
    """torch's portable compile artifacts (torch.compiler.save_cache_artifacts), kept next to the
    weights: the first boot on a GPU writes them after its first prediction, later boots load them
    at setup and compile nothing they hold. Keyed by torch version, device and levers, because the
    kernels are valid for those alone."""

    def __init__(self, path: Path, log: Log = print):
        self.path = path
        self.log = log
        self._saved_compiled = 0
        self._counted = (0, 0)

    @classmethod
    def for_weights(
        cls, weights_dir: Path, levers: Levers, device: torch.device, log: Log = print
    ) -> CompileCache:
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        name = f"torch-{torch.__version__}-{where}-{levers.key()}.bin"
        return cls(Path(weights_dir) / COMPILE_CACHE_DIR / name.replace(" ", "_"), log)

    def load(self) -> bool:
        """Before anything compiles: torch takes the artifacts as its caches' contents."""
        if not self.path.is_file():
            self.log(f"Compile cache: none yet at {self.path}; the first prediction writes it")
            return False
        torch.compiler.load_cache_artifacts(self.path.read_bytes())
        self.log(f"Compile cache: loaded {self.path}")
        return True

    def save_new(self) -> bool:
        """After a prediction: write the artifacts again when it compiled graphs that no cache
        held (inductor's FX-graph cache misses); a prediction served from the cache writes
        nothing."""
        counts = compiled, from_cache = compile_counts()
        if counts != self._counted:
            # What a publisher reads to see the cache work: a boot it serves compiles 0 graphs.
            self.log(COUNTS_LINE.format(compiled=compiled, from_cache=from_cache))
            self._counted = counts
        if compiled == self._saved_compiled:
            return False
        artifacts = torch.compiler.save_cache_artifacts()
        self._saved_compiled = compiled
        if artifacts is None:
            return False
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(artifacts[0])
            partial.replace(self.path)  # never a half-written cache for the next boot
        except OSError as error:
            # A read-only or full weights folder costs the next boot a compile, not this video.
            self.log(f"Compile cache: not written to {self.path}: {error}")
            partial.unlink(missing_ok=True)
            return False
        self.log(f"Compile cache: wrote {self.path} ({len(artifacts[0]) / 2**20:.1f} MiB)")
        return True


def compile_counts() -> tuple[int, int]:
    """Graphs inductor compiled in this process, and graphs it took from its cache instead
    (dynamo's counters): what a boot with a complete cache shows is (0, n)."""
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_miss"], counters["inductor"]["fxgraph_cache_hit"]
