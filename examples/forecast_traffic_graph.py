"""Forecast a traffic graph: one week of METR-LA speeds at 207 sensors with DCRNN's road graph.

The adjacency goes to the model with ``fit(df, graph=adj)`` (graph models such as
``graph_unet`` use it; pass ``--model graph_unet``). Forecasts the hour after the first
six days from the preceding hour and scores it against the recorded speeds.

    python examples/forecast_traffic_graph.py                    # ~5 min on 2 CPU cores
    python examples/forecast_traffic_graph.py --fast             # seconds (20 sensors, tiny model)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TINY, parse  # noqa: E402

import tsdiff  # noqa: E402
from tsdiff.data.adapters.graph import from_dcrnn_pickle  # noqa: E402
from tsdiff.metrics import mae, quantile_crps  # noqa: E402


def main(argv=None) -> dict:
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default="csdi")
    known, rest = pre.parse_known_args(argv)
    args = parse(__doc__.splitlines()[0], rest)
    folder = args.data_dir / "metr_la"
    speeds = pd.read_csv(folder / "los_speed.csv")  # 2016 five-minute steps x 207 sensors
    speeds.index = pd.date_range("2012-03-01", periods=len(speeds), freq="5min", name="time")
    graph = from_dcrnn_pickle(folder / "adj_mx.pkl")  # DCRNN's weighted adjacency (safe unpickler)
    adj = graph.to_dense()
    n = 20 if args.fast else 207
    speeds, adj = speeds.iloc[:, :n], adj[:n, :n]
    H, cut = 12, 6 * 288  # one hour ahead, after six days
    history, future = speeds.iloc[:cut], speeds.iloc[cut:cut + H]
    if args.fast:
        history = history.iloc[-300:]
        settings = dict(max_steps=4, n_samples=4, sampler="ddim", sampling_steps=3,
                        model_options=TINY if known.model == "csdi" else None)
    else:
        settings = dict(max_steps=500, n_samples=32, sampler="ddim", sampling_steps=20)
    forecaster = tsdiff.Forecaster(model=known.model, prediction_length=H, context_length=12,
                                   verbose=not args.fast, **settings)
    forecaster.fit(history, graph=adj)
    forecast = forecaster.predict()
    truth = future.to_numpy()
    result = {"crps": quantile_crps(forecast.samples, truth), "mae": mae(forecast.samples, truth),
              "naive_mae": float(np.abs(history.to_numpy()[-1:] - truth).mean()), "forecast": forecast}
    forecast.to_xarray().to_netcdf(Path(args.out) / "metr_la_forecast.nc")
    forecast.plot(Path(args.out) / "metr_la_fan.png", truth=truth)
    print(f"{known.model}: CRPS {result['crps']:.4f}  MAE {result['mae']:.2f} mph "
          f"(last value: {result['naive_mae']:.2f} mph)")
    return result


if __name__ == "__main__":
    main()
