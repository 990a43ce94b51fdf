"""Early checks of user input and settings for the Python API (:mod:`tsdiff.api`).

Each check raises a :class:`~tsdiff.errors.ConfigError` or :class:`~tsdiff.errors.DataError`
whose message names the input, what is wrong and how to fix it, before anything is
allocated or trained. Data conversion keeps the invariant of the API: NaN means
missing, observed values are kept bit for bit, or the input is refused.

- :func:`as_float64`: any numeric array (numpy masked arrays: masked entries become NaN)
  to float64, refusing values float64 cannot hold exactly (int64 beyond 2**53, float128).
- :func:`frame_to_float`: a DataFrame's value columns to float64 columns (pandas sparse,
  nullable and object columns; ``pd.NA`` / ``None`` become NaN).
- :func:`check_columns`, :func:`refuse_scipy_sparse`: column labels, scipy sparse input.
- :func:`check_lr`, :func:`check_random_state`, :func:`check_freq`, :func:`check_levels`,
  :func:`check_n_samples`: settings.
- :func:`check_model_range`: observed values too far outside a trained model's data for its
  float32 network (refused before sampling).
- :func:`divergence_callback`, :func:`check_trained`, :func:`check_finite_samples`: a
  training that diverged (non-finite loss, weights or samples) is an error, never NaN output.
- :func:`finite_reduce`: mean / median / quantile / std of sample draws that does not
  overflow for values near the float64 maximum.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from tsdiff.errors import ConfigError, DataError

#: Largest integer magnitude below which every integer is exactly a float64.
EXACT_INT = 2**53
_FMAX = float(np.finfo(np.float64).max)


# --------------------------------------------------------------------------- values
def _first(arr: np.ndarray, bad: np.ndarray):
    return arr[tuple(int(i) for i in np.argwhere(bad)[0])]


def check_exact(values: np.ndarray, where: str = "data") -> None:
    """Refuse numbers that would change when converted to float64 (tsdiff computes in float64).

    Integers beyond ``2**53`` are kept when float64 holds them exactly (e.g. ``2**60``) and
    refused otherwise; float128 / longdouble values must be float64 numbers already.
    """
    v = np.asarray(values)
    if v.dtype.kind in "iu" and v.size:
        big = (v > EXACT_INT) | ((v < -EXACT_INT) if v.dtype.kind == "i" else False)
        if big.any():
            vb = v[big]
            f = vb.astype(np.float64)
            limit = 2.0**63 if v.dtype.kind == "i" else 2.0**64
            inside = f < limit
            exact = np.zeros(vb.shape, dtype=bool)
            exact[inside] = f[inside].astype(v.dtype) == vb[inside]
            if not exact.all():
                example = vb[~exact][0]
                raise DataError(
                    f"{where}: {int((~exact).sum())} integer value(s) (e.g. {int(example)}) exceed 2**53 and cannot be "
                    "represented exactly in float64, in which tsdiff computes: the observed values would come back "
                    "changed. Subtract an offset (e.g. the column's minimum) or change the unit first, or convert "
                    "with .astype('float64') yourself if that rounding is acceptable"
                )
    elif v.dtype.kind == "f" and v.dtype.itemsize > 8 and v.size:
        with np.errstate(over="ignore"):
            back = v.astype(np.float64).astype(v.dtype)
        bad = (back != v) & ~np.isnan(v)
        if bad.any():
            raise DataError(
                f"{where}: {int(bad.sum())} value(s) of dtype {v.dtype} (e.g. {_first(v, bad)!r}) are not exactly "
                "representable in float64, in which tsdiff computes: the observed values would come back changed. "
                "Convert with .astype('float64') yourself if that rounding is acceptable"
            )


def as_float64(values, where: str = "data") -> np.ndarray:
    """A numeric array (NaN = missing; masked entries of a numpy masked array are missing too)
    as float64, after :func:`check_exact`. Non-numeric dtypes are left to the caller's checks."""
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        data = np.ma.getdata(values)
        if data.dtype.kind in "biuf":
            check_exact(data[~mask], where)
            out = data.astype(np.float64)  # a copy: the caller's array is never changed
            out[mask] = np.nan
            return out
        return np.asarray(data, dtype=object) if mask.any() else data
    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":
        check_exact(arr, where)
    return arr


def array_problem(values, exc: Exception, where: str = "X") -> DataError:
    """The DataError for ``values`` that scikit-learn's ``check_array`` could not turn into float64
    (its own text dumps the whole array for complex input, or names a numpy scalar type)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        arr = None
    if arr is not None and arr.dtype.kind == "c":
        # "Complex data not supported" is scikit-learn's wording, which its estimator checks look for
        return DataError(f"{where} holds complex numbers; tsdiff needs real numbers (e.g. np.abs(X) or X.real), with "
                         "NaN for missing values (Complex data not supported)")
    if arr is not None and arr.dtype.kind in "OUSV":
        for x in arr.ravel():
            try:
                float(x)
            except (TypeError, ValueError):
                return DataError(f"{where} holds values that are not numbers (e.g. {str(x)[:40]!r}); convert them "
                                 "with pd.to_numeric(..., errors='coerce') to make bad entries NaN (missing), or drop "
                                 "those columns")
    # scikit-learn's own text says what is wrong and how to fix it (e.g. "Reshape your data ..."):
    # keep it, less its dump of the array
    lines = [line[:300] for line in str(exc).strip().splitlines() if not line.startswith("array=")]
    return DataError(f"{where}: " + ("\n".join(lines) if lines else type(exc).__name__))


def never_observed(series, n: int, c: int, label: str) -> DataError:
    """The DataError for series ``n`` (channel ``c``) of ``series`` without an observed value:
    ``label`` names it, or on a grid its cell's coordinates (its ``"i_j"`` label is a position)."""
    from tsdiff.data.spatial import GridSpatial

    spatial = getattr(series, "spatial", None)
    if isinstance(spatial, GridSpatial):
        return DataError(f"{spatial.cell_name(n)} has no observed value of {series.channel_names[c]!r} (all NaN); "
                         "select a region without it (ds.sel / ds.isel) or fill it another way")
    return DataError(f"{label} has no observed value (all NaN); drop that column or fill it another way")


def is_scipy_sparse(obj) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency of scikit-learn
        return False
    return sp.issparse(obj)


def refuse_scipy_sparse(obj, where: str = "data") -> None:
    """scipy sparse matrices are refused: their implicit entries are zeros, not missing values."""
    if is_scipy_sparse(obj):
        raise DataError(
            f"{where} is a scipy sparse matrix ({type(obj).__name__}); tsdiff needs dense data with NaN for missing "
            "values. Pass X.toarray() if its implicit entries are zeros, or build a dense array with NaN where "
            "values are missing"
        )


def check_columns(df: pd.DataFrame, where: str = "data", allow_mixed: bool = True) -> None:
    """Column labels must be unique, also as text (``0`` and ``"0"`` collide: series are named by
    ``str(label)``); with ``allow_mixed=False`` also of one kind (scikit-learn refuses labels
    mixing strings and numbers)."""
    cols = df.columns
    if isinstance(cols, pd.MultiIndex):
        return
    if not cols.is_unique:
        dup = cols[cols.duplicated()][0]
        raise DataError(f"{where} has duplicate column {dup!r}; every series needs its own column (rename or "
                        "aggregate the duplicates)")
    kinds = {"string" if isinstance(c, str) else type(c).__name__ for c in cols}
    if not allow_mixed and len(kinds) > 1 and "string" in kinds:
        raise DataError(f"{where} has column labels of mixed types ({', '.join(sorted(kinds))}, e.g. "
                        f"{list(cols[:3])!r}), which scikit-learn estimators refuse; use one kind of label, e.g. "
                        "X.columns = X.columns.astype(str)")
    names = [str(c) for c in cols]
    if len(set(names)) != len(names):
        raise DataError(f"{where} has column labels that are equal as text ({names[:5]}); rename them")


def _column_to_float(s: pd.Series, where: str) -> np.ndarray:
    if isinstance(s.dtype, pd.SparseDtype):
        s = s.sparse.to_dense()  # the fill value is kept: NaN-filled stays missing, 0-filled stays 0
    if s.dtype == object:
        s = pd.to_numeric(s.where(s.notna(), np.nan), errors="raise")  # pd.NA / None: missing
    if isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        np_dtype = getattr(s.dtype, "numpy_dtype", None)
        if np_dtype is not None:
            check_exact(s.dropna().to_numpy(dtype=np_dtype), where)
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return as_float64(s.to_numpy(), where).astype(np.float64)


def frame_to_float(df: pd.DataFrame, where: str = "data", columns=None) -> pd.DataFrame:
    """``df`` with ``columns`` (default: all) as float64 (NaN = missing), index and labels unchanged.

    Converts pandas sparse columns (densified with their fill value), nullable columns
    (``Int64``, ``Float64``: ``pd.NA`` becomes NaN) and object columns of numbers (``None``
    / ``pd.NA`` become NaN). Call after the non-numeric check (:func:`tsdiff.api.check_frame`).
    """
    cols = list(df.columns) if columns is None else list(columns)
    todo = [c for c in cols if df[c].dtype != np.float64]
    if not todo:
        return df
    out = df.copy()
    for c in todo:
        try:
            out[c] = _column_to_float(df[c], f"{where}: column {c!r}")
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{where}: column {c!r} could not be converted to numbers ({exc}); convert it with "
                            "pd.to_numeric(..., errors='coerce') to turn bad entries into NaN (missing)") from None
    return out


# --------------------------------------------------------------------------- settings
def check_lr(lr) -> None:
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(float(lr)) or lr <= 0:
        raise ConfigError(f"lr must be a positive finite number (the default is 1e-3), got {lr!r}")


def check_random_state(random_state) -> None:
    """None, an integer seed in [0, 2**32 - 1], or a numpy RandomState / Generator."""
    if random_state is None or isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) \
            or not 0 <= int(random_state) < 2**32:
        raise ConfigError(f"random_state must be None, an integer seed in [0, 2**32 - 1] or a numpy RandomState, "
                          f"got {random_state!r}")


def seed_from(random_state) -> int:
    """A training seed in [0, 2**31 - 1) from a checked ``random_state``."""
    check_random_state(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    from sklearn.utils import check_random_state as sk_random_state

    return int(sk_random_state(random_state).randint(0, 2**31 - 1))


def check_freq(freq, name: str = "freq") -> None:
    if freq is None:
        return
    import warnings

    try:
        with warnings.catch_warnings():  # pandas warns about the case of a name it then refuses ('bogus')
            warnings.simplefilter("ignore", FutureWarning)
            pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={freq!r} is not a pandas frequency; use an alias such as 'h', 'D', "
                          "'15min' or 'W-SUN', or None to infer it from the timestamps") from None


def check_levels(levels, name: str = "quantiles") -> list[float]:
    """Quantile levels: real numbers in [0, 1]; returns them as floats."""
    try:
        qs = np.asarray(levels, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        qs = None
    if qs is None or np.asarray(levels).dtype == bool or np.isnan(qs).any() or np.any((qs < 0) | (qs > 1)):
        raise ConfigError(f"{name} must be levels in [0, 1] such as [0.1, 0.5, 0.9], got {levels!r}")
    return [float(q) for q in qs]


def check_n_samples(n, name: str = "n_samples") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


#: Farthest an observed value may lie from the mean of the data a model was trained on, in that
#: data's standard deviations: the network computes in float32, whose squares overflow near
#: 1.8e19 (a tiny CSDI sampled values 1e19 deviations out, and gave NaN at 1e20).
MAX_SCALED = 1e18


def check_model_range(scaler, values, where: str = "X", columns=None, rows=None) -> None:
    """Refuse observed values so far outside the data a model was trained on (more than
    :data:`MAX_SCALED` of its standard deviations from its mean) that the network would overflow:
    a DataError naming one of them, instead of NaN samples and a misleading message later.

    Args:
        scaler: the model's fitted scaler (``mean`` / ``std`` of shape ``[N, C]``).
        values: ``[T, N, C]``, or ``[T, N * C]`` (NaN = missing).
        columns: names of the ``N * C`` columns, ``rows``: names of the ``T`` rows (e.g.
            ``"line 7"``), for the message.
    """
    shape = np.shape(scaler.mean)
    v = np.asarray(values, dtype=np.float64)
    v = v.reshape((v.shape[0],) + tuple(shape))
    with np.errstate(all="ignore"):
        z = np.abs(np.asarray(scaler.transform(v), dtype=np.float64))
    bad = np.isfinite(v) & ~(z <= MAX_SCALED)
    if not bad.any():
        return
    t, *k = (int(i) for i in np.argwhere(bad)[0])
    flat = int(np.ravel_multi_index(tuple(k), shape)) if shape else 0
    col = columns[flat] if columns is not None else flat
    row = rows[t] if rows is not None else f"row {t}"
    mean, std = np.broadcast_to(scaler.mean, shape)[tuple(k)], np.broadcast_to(scaler.std, shape)[tuple(k)]
    raise DataError(
        f"{where}: {int(bad.sum())} observed value(s) lie too far outside the data the model was trained on, e.g. "
        f"{float(v[(t, *k)])!r} in column {col!r} ({row}): {float(z[(t, *k)]):.3g} standard deviations from the "
        f"training mean {float(mean):.6g} (std {float(std):.6g}); the network computes in float32 and would "
        "overflow. Give the values in the units of the training data, or train a model on this data")


# --------------------------------------------------------------------------- divergence
def _diverged(lr, what: str) -> ConfigError:
    return ConfigError(f"training diverged: {what} (lr={lr!r}); lower lr (the default is 1e-3) and fit again, "
                       "or check the data's scale")


def divergence_callback(lr):
    """A Lightning callback that stops training at the first non-finite training loss."""
    import lightning as L
    import torch

    class StopOnDivergence(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if isinstance(loss, torch.Tensor) and not torch.isfinite(loss).all():
                raise _diverged(lr, f"the training loss became {float(loss.detach().float().reshape(-1)[0])} at "
                                    f"step {trainer.global_step}")

    return StopOnDivergence()


def check_trained(module) -> None:
    """Refuse a trained module whose weights are not all finite."""
    import torch

    for name, p in module.named_parameters():
        if not torch.isfinite(p).all():
            lr = (module.hparams.get("optim") or {}).get("lr") if hasattr(module, "hparams") else None
            raise _diverged(lr, f"weight {name!r} holds NaN/inf after training")


def check_finite_samples(samples, lr=None) -> None:
    """Refuse sampled values (scaled space, a tensor or array) that are NaN/inf."""
    import torch

    ok = bool(torch.isfinite(samples).all()) if isinstance(samples, torch.Tensor) else bool(np.isfinite(samples).all())
    if not ok:
        raise _diverged(lr, "the model's samples hold NaN/inf values")


def check_finite_gaps(values: np.ndarray, where: str = "the output") -> None:
    """The last guard: imputed / forecast values must be finite."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{where} would hold {int(bad.sum())} NaN/inf value(s) in place of missing ones; the model "
                        "is not usable on this data: check the data's scale (values near the float64 limit) or "
                        "refit with a lower lr")


# --------------------------------------------------------------------------- reductions
def finite_reduce(fn, a: np.ndarray, *args, **kwargs) -> np.ndarray:
    """``fn(a, ...)`` (a mean, median, quantile, std over draws) without overflow.

    Ordinary values: exactly ``fn(a)``. Where that overflows although ``a`` is finite (values
    near the float64 maximum), ``fn`` is applied to ``a`` scaled by a power of two and the
    result scaled back (these statistics lie within ``a``'s range, so they are finite).
    """
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(fn(a, *args, **kwargs))
    bad = ~np.isfinite(out)
    if not bad.any() or not np.isfinite(a).all():
        return out
    k = np.ldexp(1.0, np.frexp(np.max(np.abs(a)))[1] - 1)  # a power of two <= max |a| (never inf)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        alt = np.clip(np.asarray(fn(a / k, *args, **kwargs)) * k, -_FMAX, _FMAX)
    return np.where(bad, alt, out)
