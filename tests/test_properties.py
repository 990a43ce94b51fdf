"""Observed values are sacred: property tests over random shapes, masks and missing rates.

For every registered model (:data:`tsdiff.models.MODELS`), every conditioning strategy
(:data:`tsdiff.diffusion.CONDITIONING`) and several samplers, samples equal the
inputs on the conditioning entries bit for bit: in the scaled tensor path
(``DiffusionModule.sample``, the strategies driven by a sampler), in data units
(``to_data_units``), and through the pandas / xarray adapters' round trips.

``MODEL_FIXTURES`` holds a tiny configuration per model; a registered model without
one fails :func:`test_every_registered_model_has_a_fixture` (add it there). Other
test files (numerics, determinism) reuse these fixtures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdiff.data.scalers import StandardScaler
from tsdiff.diffusion import CONDITIONING, SAMPLERS, build_conditioning, build_process
from tsdiff.models import MODELS, Condition
from tsdiff.data.scalers import to_data_units
from tsdiff.training.module import DiffusionModule

# Deterministic, small: the default suite stays fast and CI never sees a new example.
PROPS = settings(max_examples=4, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SAMPLER_CASES = [("ddpm", {}), ("ddim", {"eta": 0.0}), ("heun", {}), ("dpm_solver_pp", {}), ("pc", {"snr": 0.1}),
                 ("sde_dpm_solver_pp", {"spacing": "log_snr"})]
PROCESS = {"name": "ddpm", "num_steps": 20, "schedule": "quadratic", "beta_start": 1e-4, "beta_end": 0.5}
OPTIM = {"lr": 1e-3, "weight_decay": 0.0, "milestones": [0.75, 0.9], "gamma": 0.1}


def ring_graph(n: int):
    from tsdiff.data.spatial import GraphSpatial

    if n == 1:
        return GraphSpatial(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), 1)
    src = torch.arange(n)
    dst = (src + 1) % n
    ei = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    return GraphSpatial(ei, torch.ones(ei.shape[1]), n)


def small_grid(n: int):
    """A grid of ``n`` cells: 2 x n/2 (n even)."""
    from tsdiff.data.spatial import GridSpatial

    return GridSpatial(lat=np.array([51.0, 50.0]), lon=np.linspace(0.0, 1.0, n // 2))


#: name -> fixture(N, C) -> {"model": config, "spatial": object or None, "task": ..., "min_window": int,
#: optionally "nodes": the N values it accepts}
MODEL_FIXTURES = {
    "csdi": lambda n, c: {"model": {"name": "csdi", "layers": 1, "channels": 8, "heads": 2, "ff_dim": 8,
                                    "diffusion_embedding_dim": 8, "time_embedding_dim": 8,
                                    "feature_embedding_dim": 4},
                          "spatial": None, "task": "imputation", "min_window": 1},
    "sssd": lambda n, c: {"model": {"name": "sssd", "layers": 1, "channels": 4, "state_size": 4,
                                    "diffusion_embedding_dim": 8, "diffusion_hidden_dim": 8},
                          "spatial": None, "task": "imputation", "min_window": 1},
    "timegrad": lambda n, c: {"model": {"name": "timegrad", "rnn_layers": 1, "hidden_size": 8, "residual_layers": 2,
                                        "residual_channels": 4, "diffusion_embedding_dim": 8,
                                        "diffusion_hidden_dim": 8, "time_feature_dim": 4},
                              "spatial": None, "task": "forecasting", "min_window": 2},
    "graph_unet": lambda n, c: {"model": {"name": "graph_unet", "hidden": 4, "channel_multipliers": [1, 2],
                                          "blocks": 1, "diffusion_embedding_dim": 8},
                                # N >= 2: with one node and a 2-step window, the halved time axis leaves one
                                # value per channel and torch's instance norm refuses it (reported to the lead)
                                "spatial": ring_graph(n), "task": "imputation", "min_window": 2, "nodes": (2, 3, 4)},
    "grid_unet": lambda n, c: {"model": {"name": "grid_unet", "hidden": 4, "channel_multipliers": [1, 2],
                                         "blocks": 1, "diffusion_embedding_dim": 8},
                               "spatial": small_grid(n), "task": "imputation", "min_window": 1, "nodes": (4, 6)},
}
#: N values a model's fixture accepts (grids need at least 2 x 2 cells)
DEFAULT_NODES = (1, 2, 3, 4)


def registered_models() -> list[str]:
    import tsdiff.models as models_pkg  # noqa: F401  (registers the built-in models)

    for optional in ("graph_unet", "grid_unet", "timegrad"):
        try:
            __import__(f"tsdiff.models.{optional}")
        except ImportError:
            pass
    return MODELS.names()


def test_every_registered_model_has_a_fixture():
    missing = [name for name in registered_models() if name not in MODEL_FIXTURES]
    assert not missing, (
        f"model(s) {missing} are registered but have no tiny fixture in tests/test_properties.py "
        "MODEL_FIXTURES; add one so the property, missingness, numerics and determinism tests cover them"
    )


def make_module(name: str, n: int, c: int, window: int, seed: int = 0, scaler=None, **extra) -> DiffusionModule:
    """A tiny DiffusionModule of model ``name`` for data ``[*, window, n, c]``."""
    fx = MODEL_FIXTURES[name](n, c)
    context = max(1, window // 2) if fx["task"] == "forecasting" else None
    signature = {"protocol": "property", "task": fx["task"], "num_nodes": n, "num_channels": c, "window": window,
                 "context": context, "node_names": [str(i) for i in range(n)],
                 "channel_names": [f"c{i}" for i in range(c)]}
    if scaler is None:
        scaler = StandardScaler()
        scaler.mean, scaler.std = np.zeros((n, c)), np.ones((n, c))
    kwargs = dict(model=fx["model"], process=PROCESS, optim=OPTIM, train_mask="random", signature=signature,
                  scaler=scaler.state_dict(), config={"seed": seed}, **extra)
    if fx["spatial"] is not None and "spatial" not in extra:
        from tsdiff.training.spatial_state import spatial_state

        kwargs["spatial"] = spatial_state(fx["spatial"])
    torch.manual_seed(seed)
    return DiffusionModule(**kwargs)


def window_data(draw_seed: int, B: int, L: int, N: int, C: int, missing: float, hidden: float):
    """Raw data in data units (NaN = missing), its observed mask and a conditioning mask."""
    rng = np.random.default_rng(draw_seed)
    raw = rng.normal(20.0, 7.0, size=(B, L, N, C))
    raw = np.round(raw, rng.integers(0, 6))  # values with few and many digits
    observed = rng.random((B, L, N, C)) >= missing
    raw = np.where(observed, raw, np.nan)
    cond = observed & (rng.random((B, L, N, C)) >= hidden)
    return raw, observed, cond


def shapes(fixture: dict):
    return st.tuples(
        st.integers(0, 10_000),  # data seed
        st.integers(1, 3),  # B
        st.integers(max(fixture["min_window"], 2), 5),  # L
        st.sampled_from(fixture.get("nodes", DEFAULT_NODES)),  # N
        st.integers(1, 2),  # C
        st.sampled_from([0.0, 0.3, 0.9, 1.0]),  # missing rate
        st.sampled_from([0.0, 0.5, 1.0]),  # fraction of observed entries hidden (targets)
    )


def fixture_of(name: str) -> dict:
    if name not in MODEL_FIXTURES:
        pytest.fail(f"model {name!r} is registered but has no fixture in tests/test_properties.py MODEL_FIXTURES")
    return MODEL_FIXTURES[name](1, 1)


@pytest.mark.parametrize("name", registered_models())
def test_module_samples_keep_observed_values_bit_for_bit(name):
    @PROPS
    @given(case=shapes(fixture_of(name)), sampler=st.sampled_from(SAMPLER_CASES))
    def check(case, sampler):
        seed, B, L, N, C, missing, hidden = case
        sampler_name, options = sampler
        raw, observed, cond = window_data(seed, B, L, N, C, missing, hidden)
        scaler = StandardScaler().fit(raw.reshape(B * L, N, C))
        module = make_module(name, N, C, L, seed=seed, scaler=scaler)
        x = torch.from_numpy(np.where(observed, scaler.transform(raw), 0.0).astype(np.float32))
        cm = torch.from_numpy(cond)
        tp = torch.arange(L, dtype=torch.float32).expand(B, L)
        samples, _ = module.sample(x, cm, tp, n_samples=2, sampler=sampler_name, steps=2, sampler_options=options,
                                   generator=torch.Generator().manual_seed(seed), chunk_size=3)
        assert samples.shape == (2, B, L, N, C)
        assert torch.equal(samples[:, cm], x[cm].expand(2, -1))  # scaled space, exact
        data = to_data_units(samples, raw, cond, module.scaler)
        assert data.dtype == np.float64
        for s in range(2):  # data units: the raw input, bit for bit (NaN never leaks in)
            assert np.array_equal(data[s][cond], raw[cond])
            assert np.array_equal(data[s][cond].view(np.int64), raw[cond].view(np.int64))
        assert np.isfinite(data[:, ~cond]).all() if not MODELS.get(name).autoregressive else True

    check()


NON_AUTOREGRESSIVE = [n for n in registered_models() if not MODELS.get(n).autoregressive]


@pytest.mark.parametrize("name", NON_AUTOREGRESSIVE)
@pytest.mark.parametrize("strategy", ["conditional", "inpainting", "guidance"])
def test_every_strategy_and_sampler_keeps_observed_values(name, strategy):
    assert strategy in CONDITIONING.names()

    @settings(PROPS, max_examples=3)
    @given(case=shapes(fixture_of(name)), sampler=st.sampled_from(SAMPLER_CASES),
           proc=st.sampled_from(["ddpm", "vp", "ve"]))
    def check(case, sampler, proc):
        seed, B, L, N, C, missing, hidden = case
        sampler_name, options = sampler
        raw, observed, cond = window_data(seed, B, L, N, C, missing, hidden)
        module = make_module(name, N, C, L, seed=seed).eval()  # sampling runs the network in eval mode
        process = build_process(proc) if proc != "ddpm" else module.process
        x = torch.from_numpy(np.where(observed, raw, 0.0).astype(np.float32))
        cm = torch.from_numpy(cond)
        c = Condition(values=x, cond_mask=cm, spatial=module.spatial)

        def denoise(x_t, t):
            return module.net(x_t, process.network_time(t), c)

        g = torch.Generator().manual_seed(seed)
        setup = build_conditioning(strategy)(denoise, process, x, cm, generator=g)
        x_T = process.prior_sample(x.shape, generator=g, dtype=x.dtype)
        out = SAMPLERS.get(sampler_name)(setup.denoise_fn, x_T, process, steps=2, generator=g,
                                         step_hook=setup.step_hook, **options)
        assert torch.equal(out.x0[cm], x[cm])

    check()


def test_strategy_registry_is_covered():
    assert sorted(CONDITIONING.names()) == ["conditional", "guidance", "inpainting"], (
        "a new conditioning strategy is registered: add it to test_every_strategy_and_sampler_keeps_observed_values"
    )


# --- adapters: pandas and xarray round trips keep every observed value ------------------------

_frame_cases = st.tuples(st.integers(0, 10_000), st.integers(3, 30), st.integers(1, 5),
                         st.sampled_from([0.0, 0.2, 0.9]), st.sampled_from(["h", "D", "15min"]))


@PROPS
@given(case=_frame_cases)
def test_wide_and_long_frame_round_trips_are_exact(case):
    from tsdiff.data.adapters.frames import (from_long_dataframe, from_wide_dataframe, to_long_dataframe,
                                             to_wide_dataframe)

    seed, T, N, missing, freq = case
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(T, N)) * 10.0 ** rng.integers(-3, 4)
    values[rng.random((T, N)) < missing] = np.nan
    values[0, 0] = 1.0 / 3.0  # never all-NaN, and a value with a full mantissa
    df = pd.DataFrame(values, index=pd.date_range("2021-03-01", periods=T, freq=freq),
                      columns=[f"s{i}" for i in range(N)])
    series = from_wide_dataframe(df)
    back = to_wide_dataframe(series)
    pd.testing.assert_frame_equal(back, df, check_freq=False, check_exact=True)
    assert np.array_equal(back.to_numpy().view(np.int64), df.to_numpy().view(np.int64))
    full = from_long_dataframe(to_long_dataframe(series, dropna=False), value_cols=["value"], freq=freq)
    assert np.array_equal(full.values.view(np.int64), series.values.view(np.int64))
    # without the all-NaN rows the time axis may end earlier; every observed value survives
    short = from_long_dataframe(to_long_dataframe(series), value_cols=["value"], freq=freq)
    T2 = short.shape[0]
    assert short.time_index.equals(series.time_index[:T2]) and np.isnan(series.values[T2:]).all()
    assert np.array_equal(short.values.view(np.int64), series.values[:T2].view(np.int64))


@PROPS
@given(case=st.tuples(st.integers(0, 10_000), st.integers(2, 8), st.integers(1, 4), st.integers(1, 4),
                      st.sampled_from([0.0, 0.5]), st.sampled_from(["float32", "float64"])))
def test_xarray_grid_round_trip_is_exact(case):
    import xarray as xr

    from tsdiff.data.adapters.grid import GridSource

    seed, T, H, W, missing, dtype = case
    rng = np.random.default_rng(seed)
    values = (rng.normal(280.0, 10.0, size=(T, H, W))).astype(dtype)
    values[rng.random(values.shape) < missing] = np.nan
    da = xr.DataArray(values, dims=("time", "lat", "lon"), name="t2m", attrs={"units": "K"}, coords={
        "time": pd.date_range("2020-01-01", periods=T, freq="h"),
        "lat": xr.DataArray(np.linspace(60, 50, H), dims="lat", attrs={"units": "degrees_north"}),
        "lon": xr.DataArray(np.linspace(-5, 5, W), dims="lon", attrs={"units": "degrees_east"})})
    src = GridSource(da)
    series = src.to_series()
    assert series.shape == (T, H * W, 1)
    back = src.to_xarray(series.values)
    assert back["t2m"].dtype == values.dtype
    np.testing.assert_array_equal(back["t2m"].values, values)  # NaN where NaN, every value exact
    assert back["t2m"].attrs == {"units": "K"}
    # samples written back through the grid keep the observed cells exactly
    filled = np.where(np.isnan(series.values), 0.0, series.values)
    out = src.to_xarray(np.where(series.observed_mask, series.values, filled + 1.0))
    obs = ~np.isnan(values)
    assert np.array_equal(out["t2m"].values[obs], values[obs])


# --- the Python API and `tsdiff impute`: observed values come back bit for bit ------------------

TINY_CSDI = {"layers": 1, "channels": 8, "heads": 2, "ff_dim": 8, "diffusion_embedding_dim": 8,
             "time_embedding_dim": 8, "feature_embedding_dim": 4}


def _gappy_frame(seed: int, T: int = 40, N: int = 3, missing: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(50.0, 10.0, size=(T, N)), 3) + 1.0 / 7.0
    values[rng.random((T, N)) < missing] = np.nan
    values[0] = 1.0 / 3.0
    return pd.DataFrame(values, index=pd.date_range("2024-01-01", periods=T, freq="h"),
                        columns=[f"s{i}" for i in range(N)])


def test_imputer_keeps_observed_values_bit_for_bit():
    from tsdiff.api import Imputer

    df = _gappy_frame(0)
    X = df.to_numpy()
    obs = ~np.isnan(X)
    imp = Imputer(window=8, model_options=TINY_CSDI, max_steps=2, batch_size=4, n_samples=2, sampling_steps=2,
                  random_state=0).set_output(transform="pandas")
    out = imp.fit_transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(df.columns)
    filled = out.to_numpy()
    assert np.array_equal(filled[obs].view(np.int64), X[obs].view(np.int64))  # pandas path, exact bits
    assert np.isfinite(filled).all()
    draws = imp.sample(X, 3)  # numpy path, every draw
    assert draws.shape == (3,) + X.shape
    for d in draws:
        assert np.array_equal(d[obs].view(np.int64), X[obs].view(np.int64))


def test_cli_impute_keeps_observed_cells_byte_for_byte(tmp_path):
    from tsdiff.cli import main

    df = _gappy_frame(1, T=24, N=2)
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index_label="time", float_format="%.17g")
    model = "{" + ", ".join(f"{k}: {v}" for k, v in TINY_CSDI.items()) + "}"
    code = main(["impute", str(src), "max_steps=2", "window=8", "n_samples=2", "sampling_steps=2", "batch_size=4",
                 f"model_options={model}", "-o", str(out)])
    assert code == 0
    rows_in = [line.split(",") for line in src.read_text().splitlines()]
    rows_out = [line.split(",") for line in out.read_text().splitlines()]
    assert rows_out[0] == rows_in[0] and len(rows_out) == len(rows_in)
    n_filled = 0
    for a, b in zip(rows_in[1:], rows_out[1:]):
        for cell_in, cell_out in zip(a, b):
            if cell_in != "":
                assert cell_out == cell_in  # observed: byte for byte
            else:
                n_filled += 1
                assert np.isfinite(float(cell_out))
    assert n_filled == int(df.isna().to_numpy().sum()) > 0
