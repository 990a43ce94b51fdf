"""Helpers shared by the speed and memory benchmarks: thread pinning, timing, peak memory, records.

Memory is measured honestly on CPU: :func:`exact_rss_accounting` makes the allocator
return freed blocks to the OS, and a background thread reads the resident set size
(``/proc/self/statm``) every few milliseconds while a phase runs and reports the peak
above the RSS at the start of the phase (``ru_maxrss`` is a lifetime maximum, so it only
shows a phase that sets a new record). Settings that must be isolated completely (the
chunk-size memory bound) run in a fresh subprocess each (see ``sampling_memory.py``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "benchmarks" / "records" / "perf"


def pin_threads(threads: int) -> None:
    """Use exactly ``threads`` intra-op threads (and 1 inter-op thread) in this process.

    Call before torch does any work; OMP_NUM_THREADS should be set to the same value
    in the environment so OpenMP and MKL agree.
    """
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def exact_rss_accounting(threshold: int = 64 * 1024) -> bool:
    """Make RSS follow live memory: blocks of ``threshold`` bytes or more are mmap'd and
    returned to the OS when freed (glibc ``mallopt(M_MMAP_THRESHOLD)``, which also stops
    glibc from raising the threshold as the process runs), and freed heap is trimmed.

    Without this, memory freed by one phase stays in the process and hides the next
    phase's peak. Call once at start-up; returns False where glibc is not available.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))


def release_free_memory() -> None:
    """Return memory that glibc holds for reuse (every arena) to the OS (``malloc_trim(0)``).

    Blocks freed before :func:`exact_rss_accounting` took effect (or below its threshold)
    stay resident in the allocator's arenas; without a trim a later allocation reuses them
    and its peak does not show in the RSS. A no-op where glibc is not available.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def current_rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def parse_or_run_child(ap, argv, child, hidden: tuple[str, ...]):
    """Parse ``argv`` with ``ap`` plus a hidden ``--child`` flag and the hidden options ``hidden``
    (what :func:`run_child` passes). In a child process, print ``child(args)`` as JSON for
    :func:`run_child` and return None; otherwise return the parsed arguments."""
    import argparse

    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in hidden:
        ap.add_argument(name, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.child:
        return args
    print(json.dumps(child(args)))
    return None


def run_child(script: str, argv: list[str], threads: int, what: str) -> dict:
    """Run ``script --child argv`` in a fresh Python process with ``threads`` OpenMP threads and
    return the JSON its last line of output holds (a setting measured in isolation).

    Raises:
        RuntimeError: the process failed; the message names ``what`` and ends with its stderr.
    """
    out = subprocess.run([sys.executable, script, "--child", *argv], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(threads)), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def maxrss() -> int:
    """Lifetime peak RSS of this process in bytes: the kernel's ``VmHWM``.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that across ``fork`` + ``exec``, so a
    fresh child of a large parent (one that has just written a big file) starts at the
    parent's peak and hides its own. ``ru_maxrss`` only where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Peak RSS above the starting RSS while the context is open (background sampler).

    Attributes (after exit): ``start``, ``peak`` (bytes), ``delta = peak - start``,
    ``samples`` (number of readings).
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.start = self.peak = self.delta = 0
        self.samples = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = current_rss()
            self.peak = max(self.peak, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        import gc

        gc.collect()
        release_free_memory()
        self.start = self.peak = current_rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.peak = max(self.peak, current_rss())
        self._stop.set()
        self._thread.join()
        self.delta = self.peak - self.start


@contextmanager
def cuda_peak(device):
    """Peak CUDA memory allocated inside the block (``out["peak"]`` bytes); a no-op on CPU."""
    import torch

    out = {"peak": None}
    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield out
        torch.cuda.synchronize()
        out["peak"] = torch.cuda.max_memory_allocated()
    else:
        yield out


def sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: contention from other processes on a shared machine."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def contention_note(threads: int) -> dict:
    """What else was running: load average against the cores this run used."""
    return {"load_average": load_average(), "cpu_count": os.cpu_count(), "threads": threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "niceness": os.nice(0)}


def timed(fn, *, repeats: int = 1, device=None) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn()``."""
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def perf_record(*, task: str, protocol: str, model: str, benchmark: str, config: dict, results: dict,
                dataset_checksums: dict | None = None, sampler: str = "ddpm", nfe: int = 0, n_samples: int = 0,
                seed: int = 0, sample_seconds: float = 0.0, train_seconds: float | None = None,
                extra: dict | None = None) -> dict:
    """A tsdiff result record for a performance benchmark (``metrics`` holds the speeds)."""
    from tsdiff.bench.records import make_record

    return make_record(task=task, protocol=protocol, model=model, sampler=sampler, nfe=nfe, n_samples=n_samples,
                       seed=seed, metrics=results, train_seconds=train_seconds, sample_seconds=sample_seconds,
                       config=config, dataset_checksums=dataset_checksums or {},
                       extra={"benchmark": benchmark, **(extra or {})})


def random_training_step(net, process, B: int, L: int, N: int):
    """A training step of ``net`` on random data ``[B, L, N, 1]`` (90% observed, half of it
    conditioned on): forward, masked eps loss, backward, Adam. The cost does not depend on
    the values. Returns ``(step, x, cond)``: the closure and the data it trains on."""
    import torch

    from tsdiff.diffusion import masked_eps_loss
    from tsdiff.models import Condition

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(B, L, N, 1)
    observed = torch.rand(B, L, N, 1) < 0.9
    cond = Condition(values=x, cond_mask=observed & (torch.rand(B, L, N, 1) < 0.5),
                     timepoints=torch.arange(L, dtype=torch.float32).expand(B, L))

    def step():
        net.train()
        opt.zero_grad()
        t = process.sample_train_time(B)
        noise = torch.randn_like(x)
        eps = net(process.sample_noisy(x, t, noise), process.network_time(t), cond)
        masked_eps_loss(eps, noise, observed & ~cond.cond_mask).backward()
        opt.step()

    return step, x, cond
