"""Device and precision choices shared by the Sei stage and training."""

from __future__ import annotations

import contextlib
import functools
import logging
import os

import torch

from . import GTAError

log = logging.getLogger("gta.hardware")


# GTA_CPU_BF16=1 makes 'auto' choose bf16 on any CPU (to test the bf16 path on an AVX2-only machine:
# correct, only slow), GTA_CPU_BF16=0 makes it choose fp32 on a bf16 CPU; unset, the CPU's flags decide.
FORCE_BF16_ENV = "GTA_CPU_BF16"


def cpu_supports_bf16() -> bool:
    """Whether 'auto' precision runs bf16 on this CPU: native bf16 arithmetic (AMX-BF16 or AVX512-BF16,
    from /proc/cpuinfo flags), unless the environment variable GTA_CPU_BF16 is 1 (yes) or 0 (no)."""
    forced = os.environ.get(FORCE_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise GTAError(f"{FORCE_BF16_ENV} must be 0 or 1 (got {forced!r}); unset it to follow the CPU's flags")
    return _cpu_flags_bf16()


@functools.lru_cache(maxsize=1)
def _cpu_flags_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return bool({"amx_bf16", "avx512_bf16"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def resolve_device(device: str, input: str = "device") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu', 'cuda', 'cuda:N' checked against the hardware.

    `input` is the input errors name (GTAError.input): where the caller got `device` from.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise GTAError(
            f"{input} {device!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'", input=input
        ) from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GTAError(f"{input} is {device!r} but torch sees no CUDA GPU here; use 'auto' or 'cpu'", input=input)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise GTAError(
                f"{input} is {device!r} but only {torch.cuda.device_count()} GPU(s) are visible", input=input
            )
    elif dev.type != "cpu":
        raise GTAError(f"{input} {device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'", input=input)
    return dev


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors: on a GPU what torch.cuda.mem_get_info reports free, else the host's
    available memory (psutil when installed, else MemAvailable in /proc/meminfo; 4 GiB when neither)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


def resolve_dtype(dtype: str, device: torch.device, input: str = "dtype") -> torch.dtype:
    """Compute precision: 'auto' -> bf16 autocast on CUDA GPUs with bf16 and on CPUs with
    AMX/AVX512-BF16, else fp32; 'float32' / 'bfloat16' as asked."""
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        if device.type == "cpu" and not cpu_supports_bf16():
            log.warning("%s is bfloat16 but this CPU has no native bf16: expect it to be slow", input)
        return torch.bfloat16
    if dtype != "auto":
        raise GTAError(f"{input} must be 'auto', 'float32' or 'bfloat16' (got {dtype!r})", input=input)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def autocast(device: torch.device, dtype: torch.dtype):
    """torch.autocast to `dtype` on `device`; a no-op for float32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


@contextlib.contextmanager
def ieee_convolutions():
    """Float32 cuDNN convolutions in true float32 inside the block (PyTorch runs them in TF32 on GPUs
    by default, a 10-bit mantissa); nothing changes on CPUs."""
    conv = torch.backends.cudnn.conv
    before, conv.fp32_precision = conv.fp32_precision, "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = before


def tune_malloc() -> bool:
    """Make glibc keep freed large blocks for reuse (CPU inference): True when applied.

    By default glibc returns every block over 32 MB to the kernel, so each forward pass maps its
    batch-sized activations afresh and page-faults them in (here up to a third of the CPU time in the
    kernel); PyTorch's CPU performance guide recommends a caching allocator for the same reason.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, ctypes.c_int(1 << 30)) == 1
        return bool(ok and libc.mallopt(m_trim_threshold, ctypes.c_int(2**31 - 1)) == 1)
    except (OSError, AttributeError):  # not glibc
        return False
