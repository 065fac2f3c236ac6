"""What the speed figures share: the machine's name, peak memory, timing loops, the GPUs' data
sheet peaks and model-size presets."""

from __future__ import annotations

import math
import platform
import resource
import time
from pathlib import Path

import torch
import yaml

from dnadiff.errors import DnadiffError

#: model-size presets: config fragments (their ``model`` section) in the repository's config/
PRESET_DIR = Path(__file__).resolve().parents[2] / "config" / "presets"


def presets() -> list[str]:
    """The names of the model-size presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict:
    """The ``model`` section of ``config/presets/<name>.yaml``."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise DnadiffError(f"--preset: unknown {name!r} ({', '.join(presets())}; presets are "
                           f"the model sections of {PRESET_DIR}/*.yaml)")
    return dict(yaml.safe_load(path.read_text())["model"])


def machine_name(device: torch.device | None = None) -> str:
    """The GPU's name on a GPU, else the CPU model."""
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory(device: torch.device | None = None) -> dict:
    """The process's peak resident memory so far (MB) and, on a GPU, the peak allocated by
    torch since the last ``torch.cuda.reset_peak_memory_stats``."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out = {"peak_rss_mb": round(rss / (2**20 if platform.system() == "Darwin" else 2**10), 1)}
    if device is not None and device.type == "cuda":
        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def best_of(fn, reps: int) -> float:
    """The shortest of ``reps`` timings of ``fn`` (seconds)."""
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def step_seconds(fn, reps: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of ``reps`` calls of ``fn`` after ``warmup`` untimed ones (the GPU
    synchronized around each)."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


#: Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, matched against
#: ``torch.cuda.get_device_name``; anything else needs ``--peak-tflops``.
GPU_PEAK_BF16 = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989.4e12),
                 ("GH200", 989.4e12), ("H200", 989.4e12), ("A100", 312e12),
                 ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12))


def peak_flops(device: torch.device, dtype: str, override_tflops: float | None = None):
    """(peak FLOP/s, where it comes from) for MFU; (None, reason) when unknown."""
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "CPU peak unknown: give --peak-tflops"
    if dtype != "bf16":
        return None, "peak table is for bf16: give --peak-tflops"
    name = torch.cuda.get_device_name(device)
    for key, value in GPU_PEAK_BF16:
        if key in name:
            return value, f"dense bf16 peak of {key} (data sheet)"
    return None, f"no peak known for {name!r}: give --peak-tflops"


def measured_matmul_flops(device: torch.device, dtype: str) -> float:
    """FLOP/s of a large square matmul in ``dtype`` on ``device`` (best of 3): what this
    machine's GEMM reaches, a practical peak where the data sheet's is unknown (CPUs)."""
    n = 8192 if device.type == "cuda" else 2048
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device).to(dt)
    b = torch.randn(n, n, device=device).to(dt)
    times = step_seconds(lambda: torch.mm(a, b), 3, 1, device)
    return 2 * n**3 / min(times)
