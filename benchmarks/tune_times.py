"""Tune the visited times of a few-step sampler on validation windows (pattern search).

A few-step sampler loses most of its accuracy through where its times lie. This script
starts from a named spacing (or given times) of a model trained with a discrete DDPM and
moves one visited time at a time by +-d steps (d = 4, then 2, then 1). In each round it
scores every single move and keeps the best one if it lowers the CRPS of ``--n-samples``
samples on the chosen validation windows. Every candidate is scored with the same seed,
so all of them see the same noise draws. The noisiest time stays at ``T - 1``, where the
prior is drawn, unless ``--free-first`` lets it move down too; the last time may rise
above 0, and the sampler then returns its ``x_0`` prediction from there.

``--free-first`` starts the chain below ``T - 1`` from the same ``N(0, I)`` prior. That is
an approximation whose size the record states (``prior_signal_fraction``, the share
``abar_t`` of the data in the marginal variance at the first time, about 0.2% at step 42
of CSDI's 50-step schedule). It can pay off a lot: at pure noise the ``x_0`` prediction
divides the network's error by ``sqrt(abar_{T-1})`` (0.006 there), and a large first
jump carries that error into the next noise level, while many small steps do not.

Use enough samples (8 or more) and watch the logged 90% coverage: with one or two samples
the CRPS is close to the MAE, which rewards ending at a high noise level (there the last
``x_0`` prediction is a posterior mean, not a sample); the search then collapses the spread.

The result is a list for the sampler's ``spacing`` option, e.g.
``eval.sampler_options: {spacing: [49, 42, 36, 22, 7, 0]}``, or in ``sampler_nfe.py``
``ddpm:6:spacing=49/42/36/22/7/0``. Judge it on the test split, never on the windows it
was tuned on.

    python benchmarks/tune_times.py runs/csdi_physionet_cpu_4ep/model.pt --steps 6 \\
        --spacing log_snr --windows 0:32 --n-samples 8 --workers 2 \\
        --out benchmarks/records/physionet/tuned_times

Writes one tsdiff record (``tune_times_<sampler><steps>.json``): the metrics of the best
times, and under ``evaluations`` every candidate scored, in order.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampler_nfe import WindowSlice, load_with_protocol, parse_window_range, sha256_of  # noqa: E402

_STATE: dict = {}


def _load(model_path: str, threads: int) -> None:
    """Worker start: one model and protocol per process."""
    import torch

    torch.set_num_threads(threads)
    module, _, _, protocol = load_with_protocol(model_path)
    _STATE.update(module=module, protocol=protocol)


def score(times: tuple[int, ...], sampler: str, split: str, windows: tuple[int, int], n_samples: int,
          seed: int) -> dict:
    """``{"metrics", "nfe"}`` of ``sampler`` visiting ``times`` on ``windows`` of ``split``."""
    from tsdiff.training.evaluate import evaluate

    protocol = WindowSlice(_STATE["protocol"], *windows)
    res = evaluate(_STATE["module"], protocol, split, n_samples=n_samples, sampler=sampler,
                   sampler_options={"spacing": list(times)}, seed=seed, progress=False)
    return {"metrics": res["metrics"], "nfe": res["nfe"]}


def neighbours(times: tuple[int, ...], d: int, first_max: int | None = None) -> list[tuple[int, ...]]:
    """Every schedule one time away by +-d, strictly decreasing and >= 0.

    The first time stays unless ``first_max`` is given; it may then move too, up to ``first_max``.
    """
    out = []
    for i in range(0 if first_max is not None else 1, len(times)):
        for move in (-d, d):
            c = list(times)
            c[i] += move
            above = c[i - 1] if i > 0 else first_max + 1
            below = c[i + 1] if i + 1 < len(c) else -1
            if above > c[i] > below:
                out.append(tuple(c))
    return out


def search(start: tuple[int, ...], deltas: list[int], evaluate_many,
           first_max: int | None = None) -> tuple[tuple[int, ...], float, list[dict]]:
    """Pattern search from ``start``; ``evaluate_many(list of times) -> list of CRPS``.

    ``first_max``: ``None`` keeps the first time fixed; an int lets it move up to that value.

    Returns ``(best times, best CRPS, evaluations in order)``.
    """
    seen: dict[tuple[int, ...], float] = {}
    log: list[dict] = []

    def crps_of(cands: list[tuple[int, ...]]) -> list[float]:
        todo = [c for c in dict.fromkeys(cands) if c not in seen]
        for c, v in zip(todo, evaluate_many(todo) if todo else []):
            seen[c] = v
            log.append({"times": list(c), "crps": v})
        return [seen[c] for c in cands]

    best = start
    best_v = crps_of([best])[0]
    for d in deltas:
        while True:
            cands = neighbours(best, d, first_max)
            if not cands:
                break
            vals = crps_of(cands)
            j = min(range(len(cands)), key=vals.__getitem__)
            if vals[j] >= best_v:
                break
            best, best_v = cands[j], vals[j]
            print(f"d={d}: {list(best)} CRPS {best_v:.6f}", flush=True)
    return best, best_v, log


def _whole_numbers(items: list[str], flag: str, example: str) -> list[int]:
    """``items`` as ints, or a SystemExit that names ``flag`` and shows ``example``."""
    try:
        return [int(v) for v in items]
    except ValueError:
        raise SystemExit(f"{flag} must be whole numbers, e.g. {example}; got {','.join(items)!r}") from None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model file written by tsdiff fit (model.pt)")
    ap.add_argument("--sampler", default="ddpm")
    ap.add_argument("--steps", type=int, help="number of visited times (with --spacing)")
    ap.add_argument("--spacing", default="log_snr", help="named spacing to start from (default log_snr)")
    ap.add_argument("--start", help="start from these times instead, e.g. 49/42/32/14/3/0")
    ap.add_argument("--split", default="val", help="split to tune on (default val)")
    ap.add_argument("--windows", default="0:32", help="START:STOP window range of the split (default 0:32)")
    ap.add_argument("--n-samples", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--free-first", action="store_true",
                    help="let the first time move below T - 1 too (the prior is then drawn there)")
    ap.add_argument("--deltas", default="4,2,1", help="move sizes in steps, tried in order (default 4,2,1)")
    ap.add_argument("--workers", type=int, default=1, help="candidates scored in parallel, one thread each")
    ap.add_argument("--out", type=Path, required=True, help="folder for the record")
    args = ap.parse_args(argv)

    import torch

    from tsdiff.bench.records import git_commit, make_record, write_record

    if args.n_samples < 2:
        raise SystemExit("--n-samples must be >= 2 (8 or more advised): with one sample CRPS is the MAE, "
                         "which a posterior mean wins")
    if args.split == "test":
        raise SystemExit("--split test would tune on the windows the result is judged on; tune on val")
    git_commit()  # the code that was loaded, before anything can change the checkout
    module, extra, cfg, protocol = load_with_protocol(args.model)
    process = module.process
    top, _, integer = process.time_range()
    if not integer:
        raise SystemExit(f"{type(process).__name__} has continuous times; this search moves whole DDPM steps")
    top = int(top)
    if args.start:
        start = tuple(_whole_numbers(args.start.replace(",", "/").split("/"), "--start", "49/42/32/14/3/0"))
        process.explicit_times(list(start))  # a clear error before any sampling
    else:
        if args.steps is None:
            raise SystemExit("give --steps (with --spacing) or --start")
        start = tuple(process.sampling_times(args.steps, args.spacing).tolist())
    if start[0] != top and not args.free_first:
        raise SystemExit(f"the first time must be T - 1 = {top}, where the prior is drawn "
                         f"(or pass --free-first to start the chain lower)")
    deltas = _whole_numbers(args.deltas.split(","), "--deltas", "4,2,1")
    if any(d < 1 for d in deltas):
        raise SystemExit(f"--deltas must be whole numbers >= 1, e.g. 4,2,1; got {args.deltas!r}")
    try:
        windows = parse_window_range(args.windows)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    n_split = len(protocol.dataset(args.split))
    if windows[1] > n_split:
        raise SystemExit(f"--windows {args.windows} runs past the {n_split} windows of split {args.split!r}")

    if args.workers > 1:  # fresh interpreters: no forked OpenMP state
        del module
        pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_load, initargs=(args.model, 1))
    else:  # score in this process, with the model and protocol already loaded
        _STATE.update(module=module, protocol=protocol)
        pool = None
    metrics_of: dict[tuple[int, ...], dict] = {}
    nfe_of: dict[tuple[int, ...], int] = {}

    def evaluate_many(cands: list[tuple[int, ...]]) -> list[float]:
        job = (args.sampler, args.split, windows, args.n_samples, args.seed)
        if pool is None:
            results = [score(c, *job) for c in cands]
        else:
            results = [f.result() for f in [pool.submit(score, c, *job) for c in cands]]
        out = []
        for c, res in zip(cands, results):
            metrics_of[c], nfe_of[c] = res["metrics"], res["nfe"]
            out.append(metrics_of[c]["crps"])
            print(json.dumps({"times": list(c), "crps": round(out[-1], 6),
                              "coverage_90": round(metrics_of[c].get("coverage_90", float("nan")), 4)}), flush=True)
        return out

    t0 = time.perf_counter()
    try:
        best, best_v, log = search(start, deltas, evaluate_many, top if args.free_first else None)
    finally:
        if pool is not None:
            pool.shutdown()
    for entry in log:
        m = metrics_of[tuple(entry["times"])]
        entry.update(mae=m["mae"], coverage_90=m.get("coverage_90"))
    print(f"best {list(best)} CRPS {best_v:.6f} (start {list(start)} CRPS {log[0]['crps']:.6f})", flush=True)
    rec = make_record(
        task=f"{cfg['data']['dataset']}_{cfg['task']}", protocol=protocol.id, model=cfg["model"]["name"],
        sampler=args.sampler, nfe=nfe_of[best], n_samples=args.n_samples, seed=args.seed, metrics=metrics_of[best],
        train_seconds=extra.get("train_seconds"), sample_seconds=time.perf_counter() - t0, config=cfg,
        dataset_checksums=protocol.checksums,
        extra={"benchmark": "tune_times", "split": args.split, "windows": list(windows),
               "start_times": list(start), "best_times": list(best), "start_crps": log[0]["crps"],
               "best_crps": best_v, "deltas": deltas, "free_first": args.free_first,
               "prior_signal_fraction": float(process.marginal_coefficients(torch.tensor([best[0]]))[0][0] ** 2),
               "evaluations": log,
               "model_file": str(args.model), "model_sha256": sha256_of(args.model),
               "torch_threads": 1 if args.workers > 1 else torch.get_num_threads(),
               "workers": args.workers, "cpu_count": os.cpu_count()},
    )
    write_record(rec, args.out, f"tune_times_{args.sampler}{len(best)}")


if __name__ == "__main__":
    main()
