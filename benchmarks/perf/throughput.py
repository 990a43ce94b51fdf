"""Training and sampling throughput and peak memory, tsdiff versus PyPOTS's CSDI, in one process.

Both libraries run in the same process, with the same thread count, on the same data
windows and the same conditioning masks, and the timed phases alternate (tsdiff,
PyPOTS, tsdiff, PyPOTS, ...) so contention from other processes hits both alike;
the record holds every repeat, the medians and the ratios.

What is timed (only comparable work):

- training: ``--train-steps`` optimiser steps per repeat on identical pre-built batches
  (same windows, same conditioning masks, batch ``--batch-size``). One step is what
  each library's own training loop does: forward with the masked epsilon loss,
  ``backward``, Adam step (PyPOTS: ``_CSDI(inputs, calc_criterion=True)`` and its
  ``Adam`` optimizer, as in ``BaseNNImputer._train_model``; tsdiff:
  ``DiffusionModule.diffusion_loss`` and ``torch.optim.Adam``). Data loading, mask
  drawing, validation and logging are outside the timed region for both.
- sampling: ``--sample-windows`` test windows x ``--n-samples`` samples with 50-step
  ancestral (DDPM) sampling. PyPOTS through its public ``CSDI.predict(test_set,
  n_sampling_times=S)`` (its own batching: ``batch_size`` windows per pass, one
  sample per pass, ``S`` passes); tsdiff through ``DiffusionModule.sample`` (all
  (window, sample) pairs in chunks of ``chunk_size``).

For ``--model csdi`` the PyPOTS model is built from the tsdiff model config (layers,
channels, heads, diffusion / time / feature embedding widths, diffusion steps,
schedule, beta range). For other registered tsdiff models (TimeGrad, graph U-Net)
PyPOTS's CSDI at the same config file's CSDI-paper settings runs as the reference
on the same windows, and the record says the architectures differ.

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/perf/throughput.py \
        --config configs/imputation/csdi_aqi36.yaml --threads 2 --out benchmarks/records/perf
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the sampler-setting parser

from sampler_nfe import parse_setting  # noqa: E402
from common import (  # noqa: E402
    RECORDS, PeakRSS, contention_note, cuda_peak, exact_rss_accounting, maxrss, median, perf_record, pin_threads, sync,
)

#: CSDI paper settings, used for the PyPOTS reference when the tsdiff model is not CSDI.
CSDI_PAPER = dict(layers=4, channels=64, heads=8, ff_dim=64, diffusion_embedding_dim=128, time_embedding_dim=128,
                  feature_embedding_dim=16, dropout=0.1)

#: Known, unavoidable differences between the two implementations (written into records).
DIFFERENCES = [
    "PyPOTS's transformer feed-forward width is fixed at 64 and its dropout at 0.1 (nn.TransformerEncoderLayer "
    "defaults); tsdiff is configured to the same values for the comparison.",
    "PyPOTS's linear maps are 1x1 Conv1d on [B, C, K*L]; tsdiff's are nn.Linear on channels-last tensors "
    "(the same maths).",
    "PyPOTS's sampler loops over samples (n_sampling_times passes of its batch); tsdiff batches (window, sample) "
    "pairs in chunks of chunk_size. Both run 50 network evaluations per sample path.",
    "Initial weights differ (each library's own initialisation); the work per step does not depend on the values.",
]


def build_tsdiff(config: str, overrides: list[str], data_dir: str | None):
    from tsdiff.config import load_config
    from tsdiff.data import build_protocol
    from tsdiff.experiment import build_module

    cfg = load_config(config, list(overrides) + ([f"data.data_dir={data_dir}"] if data_dir else []))
    data = cfg["data"]
    protocol = build_protocol(data["dataset"], data["data_dir"], data["options"])
    return cfg, protocol, build_module(cfg, protocol)


def training_batches(protocol, module, n: int, batch_size: int, seed: int) -> list[dict]:
    """``n`` training batches with their conditioning masks drawn once (shared by both libraries)."""
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(protocol.dataset("train"), batch_size=batch_size, shuffle=True, generator=gen, drop_last=True)
    out = []
    for batch in loader:
        if len(out) == n:
            break
        cond = batch.get("cond_mask")
        if cond is None:
            cond = module.mask_fn(batch["observed_mask"], gen)
        out.append({"x": batch["x"], "observed_mask": batch["observed_mask"], "cond_mask": cond,
                    "timepoints": batch["timepoints"]})
    if len(out) < n:
        raise SystemExit(f"only {len(out)} training batches of {batch_size} windows; lower --train-steps")
    return out


def build_pypots(model_cfg: dict, process_cfg: dict, n_steps: int, n_features: int, batch_size: int, device):
    """PyPOTS CSDI at the tsdiff configuration (CSDI options only)."""
    from pypots.imputation import CSDI

    m = {**CSDI_PAPER, **{k: v for k, v in model_cfg.items() if k != "name"}}
    if m["ff_dim"] != 64 or m.get("dropout", 0.1) != 0.1:
        raise SystemExit("PyPOTS's CSDI fixes ff_dim=64 and dropout=0.1; compare at those values")
    if process_cfg["name"] != "ddpm" or process_cfg["schedule"] not in ("quadratic", "linear"):
        raise SystemExit("PyPOTS's CSDI has a discrete DDPM with a quadratic or linear schedule only")
    schedule = {"quadratic": "quad", "linear": "linear"}[process_cfg["schedule"]]
    return CSDI(
        n_steps=n_steps, n_features=n_features, n_layers=m["layers"], n_heads=m["heads"], n_channels=m["channels"],
        d_time_embedding=m["time_embedding_dim"], d_feature_embedding=m["feature_embedding_dim"],
        d_diffusion_embedding=m["diffusion_embedding_dim"], n_diffusion_steps=process_cfg["num_steps"],
        schedule=schedule, beta_start=process_cfg["beta_start"], beta_end=process_cfg["beta_end"],
        batch_size=batch_size, epochs=1, device=device, saving_path=None, model_saving_strategy=None, verbose=False,
    )


def pypots_inputs(batch: dict, device) -> dict:
    """PyPOTS ``_CSDI`` training inputs (``[B, K, L]`` layout) of a tsdiff batch."""
    B, L = batch["x"].shape[:2]
    flat = lambda t: t.reshape(B, L, -1).permute(0, 2, 1).float().contiguous().to(device)  # noqa: E731
    observed, cond = batch["observed_mask"], batch["cond_mask"]
    return {"X_ori": flat(batch["x"] * observed), "indicating_mask": flat(observed & ~cond),
            "cond_mask": flat(cond), "observed_tp": batch["timepoints"].float().to(device)}


def run(args) -> dict:
    import torch

    pin_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    overrides = list(args.set)
    cfg, protocol, module = build_tsdiff(args.config, overrides, args.data_dir)
    if args.batch_size is None:
        args.batch_size = cfg["data"]["batch_size"]
    model_name = cfg["model"]["name"]
    module.to(device)
    if args.compile:
        module.net = torch.compile(module.net, dynamic=False)
    sig = protocol.signature
    L, K = protocol.window, sig["num_nodes"] * sig["num_channels"]
    csdi_like = model_name == "csdi"
    ref_cfg = cfg["model"] if csdi_like else {"name": "csdi", **CSDI_PAPER}
    pypots = None if args.no_pypots else build_pypots(ref_cfg, cfg["process"], L, K, args.batch_size, device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else None

    batches = training_batches(protocol, module, args.train_steps, args.batch_size, args.seed)
    ts_opt = torch.optim.Adam(module.parameters(), lr=cfg["optim"]["lr"])
    ts_batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    pp_batches = [pypots_inputs(b, device) for b in batches]

    def ts_train():
        module.train()
        for b in ts_batches:
            ts_opt.zero_grad()
            if amp is not None:
                with amp:
                    loss = module.diffusion_loss(b)
            else:
                loss = module.diffusion_loss(b)
            loss.backward()
            ts_opt.step()

    def pp_train():
        core = pypots.model
        core.train()
        for inp in pp_batches:
            pypots.optimizer.zero_grad()
            loss = core(inp, calc_criterion=True)["loss"].sum()
            loss.backward()
            pypots.optimizer.step()

    # --- sampling inputs: the first windows of the test split ----------------------
    test = protocol.dataset("test")
    items = [test[i] for i in range(min(args.sample_windows, len(test)))]
    x = torch.stack([it["x"] for it in items]).to(device)
    cm = torch.stack([it["cond_mask"] for it in items]).to(device)
    tp = torch.stack([it["timepoints"] for it in items]).to(device)
    W, S = len(items), args.n_samples
    X_nan = torch.where(cm, x, torch.nan).reshape(W, L, K).cpu().numpy()  # PyPOTS: NaN = not conditioned on
    gen = torch.Generator(device=device).manual_seed(args.seed)

    def ts_draw(sampler: str = "ddpm", steps: int | None = None, options: dict | None = None):
        with amp if amp is not None else contextlib.nullcontext():
            return module.sample(x, cm, tp, n_samples=S, sampler=sampler, steps=steps, sampler_options=options,
                                 generator=gen, chunk_size=args.chunk_size)

    def ts_sample():
        return ts_draw()

    def pp_sample():
        return pypots.predict({"X": X_nan}, n_sampling_times=S)

    fast = args.fast_setting

    def ts_fast_sample():
        return ts_draw(*fast)

    phases = {"train": (ts_train, pp_train, args.train_steps * args.batch_size),
              "sample": (ts_sample, pp_sample, W * S),
              # tsdiff's fast sampler against PyPOTS's own 50-step ancestral sampling of the same work
              "fast_sample": (ts_fast_sample, pp_sample, W * S)}
    results: dict = {}
    for phase in args.phases:
        ts_fn, pp_fn, work = phases[phase]
        # warm-up (allocator, compile, one-time caches), not timed
        if phase == "train":
            for b in ts_batches[:1]:
                module.diffusion_loss(b).backward()
            ts_opt.zero_grad()
            if pypots is not None:
                pypots.model.train()
                pypots.model(pp_batches[0], calc_criterion=True)["loss"].sum().backward()
                pypots.optimizer.zero_grad()
        if phase in ("sample", "fast_sample") and args.compile:
            ts_fn()  # compilation happens on the first pass: not timed
        times = {"tsdiff": [], "pypots": []}
        cuda_mem = {"tsdiff": None, "pypots": None}
        # timed repeats run with the default allocator: forcing every large block through
        # mmap/munmap (needed for exact RSS peaks) costs page faults that are not the
        # libraries' own work, so memory is measured in a separate pass below
        for rep in range(args.repeats):
            order = [("tsdiff", ts_fn), ("pypots", pp_fn)] if rep % 2 == 0 else [("pypots", pp_fn), ("tsdiff", ts_fn)]
            for lib, fn in order:
                if lib == "pypots" and pypots is None:
                    continue
                with cuda_peak(device) as cpk:
                    sync(device)
                    t0 = time.perf_counter()
                    fn()
                    sync(device)
                    times[lib].append(time.perf_counter() - t0)
                cuda_mem[lib] = cpk["peak"]
                print(f"{phase} {lib} rep {rep}: {times[lib][-1]:.2f} s", flush=True)
        unit = "windows_per_s" if phase == "train" else "window_samples_per_s"
        res = {"work_items": work, "unit": unit}
        for lib in times:
            if not times[lib]:
                continue
            res[lib] = {"seconds": times[lib], "median_seconds": median(times[lib]),
                        unit: work / median(times[lib]), "peak_cuda_bytes": cuda_mem[lib]}
        if times["pypots"]:
            res["ratio_tsdiff_over_pypots"] = res["tsdiff"][unit] / res["pypots"][unit]
            # per-repeat ratios of adjacent runs: the spread shows the contention noise
            res["ratio_per_repeat"] = [p / t for t, p in zip(times["tsdiff"], times["pypots"])]
        results[phase] = res

    # memory pass (untimed): freed blocks go back to the OS, so each run's RSS peak is its own
    if args.memory_pass and exact_rss_accounting():
        for phase in args.phases:
            ts_fn, pp_fn, _ = phases[phase]
            for lib, fn in (("tsdiff", ts_fn), ("pypots", pp_fn)):
                if lib == "pypots" and pypots is None:
                    continue
                with PeakRSS() as rss:
                    fn()
                results[phase][lib]["peak_rss_delta_bytes"] = rss.delta
                print(f"{phase} {lib} memory pass: peak RSS +{rss.delta / 2**20:.0f} MiB", flush=True)

    if "sample" in args.phases and pypots is not None and args.check_samples:
        # both produced imputations of the same windows: conditioning entries must be untouched
        s_ts, _ = ts_sample()
        assert torch.equal(s_ts[:, cm], x[cm].expand(S, -1)), "tsdiff changed conditioning values"
        results["sample_check"] = "tsdiff conditioning entries returned exactly"

    n_params = {"tsdiff": sum(p.numel() for p in module.net.parameters())}
    if pypots is not None:
        n_params["pypots"] = sum(p.numel() for p in pypots.model.parameters())
    settings = {"threads": args.threads, "device": str(device), "batch_size": args.batch_size,
                "train_steps_per_repeat": args.train_steps, "repeats": args.repeats, "sample_windows": W,
                "n_samples": S, "sampler": "ddpm (ancestral)", "nfe": cfg["process"]["num_steps"],
                "fast_sampler": None if fast is None else {"sampler": fast[0], "steps": fast[1], "options": fast[2]},
                "chunk_size": args.chunk_size, "compile": args.compile, "bf16": args.bf16, "window": L,
                "features": K, "overrides": overrides}
    record = perf_record(
        task=f"{cfg['data']['dataset']}_{cfg['task']}", protocol=protocol.id, model=model_name,
        benchmark="throughput_vs_pypots_csdi", config=cfg, results=results, dataset_checksums=protocol.checksums,
        nfe=cfg["process"]["num_steps"], n_samples=S, seed=args.seed,
        sample_seconds=results.get("sample", {}).get("tsdiff", {}).get("median_seconds", 0.0),
        extra={"settings": settings, "parameters": n_params, "reference": "pypots.imputation.CSDI "
               + _version("pypots") + ("" if csdi_like else " at CSDI paper settings (a different architecture)"),
               "differences": DIFFERENCES, "contention": contention_note(args.threads),
               "lifetime_maxrss_bytes": maxrss()},
    )
    if args.out:
        from tsdiff.bench.records import write_record

        stem = args.stem or (f"throughput_{model_name}_{cfg['data']['dataset']}_{device.type}_t{args.threads}"
                             + ("_compile" if args.compile else "") + ("_bf16" if args.bf16 else ""))
        path = write_record(record, args.out, stem)
        print(f"wrote {path}")
    summary = {ph: {k: v for k, v in r.items() if k.startswith("ratio")} for ph, r in results.items()
               if isinstance(r, dict)}
    print(json.dumps(summary, indent=1, default=lambda v: round(v, 3)))
    return record


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="tsdiff YAML config (model, process, dataset)")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    ap.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the config's data.batch_size")
    ap.add_argument("--train-steps", type=int, default=5, help="optimiser steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats per library (alternating order)")
    ap.add_argument("--sample-windows", type=int, default=4)
    ap.add_argument("--n-samples", type=int, default=8)
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--phases", nargs="+", default=["train", "sample"], choices=["train", "sample", "fast_sample"])
    ap.add_argument("--fast", default=None, metavar="SAMPLER:STEPS[:k=v,...]",
                    help="also time tsdiff with this sampler (e.g. ddpm:10:spacing=log_snr) against PyPOTS's "
                         "50-step ancestral sampling of the same windows x samples (phase fast_sample)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the tsdiff network")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for tsdiff (GPUs; CPUs with AMX)")
    ap.add_argument("--no-pypots", action="store_true", help="tsdiff only (no reference run)")
    ap.add_argument("--check-samples", action="store_true")
    ap.add_argument("--no-memory-pass", dest="memory_pass", action="store_false",
                    help="skip the untimed peak-RSS pass after the timed repeats")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RECORDS))
    ap.add_argument("--stem", default=None)
    args = ap.parse_args(argv)
    args.fast_setting = parse_setting(args.fast) if args.fast else None  # a typo fails before any work
    if args.fast_setting is not None and "fast_sample" not in args.phases:
        args.phases.append("fast_sample")
    if "fast_sample" in args.phases and args.fast_setting is None:
        ap.error("phase fast_sample needs --fast SAMPLER:STEPS, e.g. --fast ddpm:8:spacing=log_snr")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from tsdiff.config import load_config
    from tsdiff.models import MODELS

    name = load_config(args.config, [a for a in args.set if a.startswith("model.")])["model"]["name"]
    if name not in MODELS:
        print(f"model {name!r} is not registered in this tsdiff (registered: {sorted(MODELS)}); nothing to run")
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
