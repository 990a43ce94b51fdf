"""The denoiser contract shared by every network.

``net(x_noisy, noise_level, cond) -> prediction``: ``x_noisy`` is ``[B, L, N, C]``,
``noise_level`` is ``[B]`` (the process's ``network_time``), ``cond`` a
:class:`Condition`. Networks never know which sampler runs them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from tsdiff.diffusion.parametrization import _check_prediction
from tsdiff.errors import ConfigError, DataError
from tsdiff.registry import Registry, check_options


@dataclass
class Condition:
    """What a conditional denoiser may look at.

    Attributes:
        values: ``[B, L, N, C]`` scaled values; only entries under ``cond_mask`` are used.
        cond_mask: bool ``[B, L, N, C]``: entries the model conditions on.
        timepoints: ``[B, L]`` float time positions (or None: 0..L-1).
        spatial: spatial metadata (graph / grid) or None.
        prior: ``[B, L, N, C]`` the informative prior's estimate of every entry (equal to
            ``values`` on ``cond_mask``; :mod:`tsdiff.diffusion.priors`), or None.
        covariates: ``[B, L, K]`` scaled covariates shared by every series of a window (known-future
            and calendar columns, past-only columns zeroed over the horizon, and a channel that is 1
            where past-only ones are known; :mod:`tsdiff.data.covariates`), or None. Networks read
            them through :meth:`Denoiser.covariate_term`.
        loc, scale: ``[B, 1, N, C]`` each window's and series' location and scale
            (``prior.window_norm``, :mod:`tsdiff.diffusion.window_norm`), or None; ``values`` and
            ``prior`` stay in the global scaled units, :meth:`for_network` applies them.
    """

    values: torch.Tensor
    cond_mask: torch.Tensor
    timepoints: torch.Tensor | None = None
    spatial: Any = None
    prior: torch.Tensor | None = None
    covariates: torch.Tensor | None = None
    loc: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    def normalised(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """``t`` (``[B, L, N, C]``, or None) in each window's own units, ``(t - loc) / scale``;
        ``t`` itself without window statistics."""
        if t is None or self.scale is None:
            return t
        return (t - self.loc) / self.scale

    def for_network(self) -> "Condition":
        """What the network is handed: with window statistics, ``values`` and ``prior``
        :meth:`normalised` (each window at the same level and spread); else this condition."""
        if self.scale is None:
            return self
        return replace(self, values=self.normalised(self.values), prior=self.normalised(self.prior))

    def filled(self) -> torch.Tensor:
        """What a network reads as the conditioning input: ``values`` on ``cond_mask``, and off it
        the prior's estimate, or 0 without a prior."""
        if self.prior is None:
            return self.values * self.cond_mask.to(self.values.dtype)
        return torch.where(self.cond_mask, self.values, self.prior)

    def repeat(self, n: int) -> "Condition":
        """Repeat every batch entry ``n`` times (sample-major: ``[n * B, ...]``)."""
        if n == 1:
            return self
        rep = lambda t: None if t is None else t.repeat((n,) + (1,) * (t.dim() - 1))  # noqa: E731
        return replace(self, values=rep(self.values), cond_mask=rep(self.cond_mask), timepoints=rep(self.timepoints),
                       prior=rep(self.prior), covariates=rep(self.covariates), loc=rep(self.loc),
                       scale=rep(self.scale))

    def slice(self, lo: int, hi: int) -> "Condition":
        """Batch entries ``lo .. hi - 1`` (the same spatial metadata)."""
        cut = lambda t: None if t is None else t[lo:hi]  # noqa: E731
        return replace(self, values=self.values[lo:hi], cond_mask=self.cond_mask[lo:hi],
                       timepoints=cut(self.timepoints), prior=cut(self.prior), covariates=cut(self.covariates),
                       loc=cut(self.loc), scale=cut(self.scale))

    def to(self, device) -> "Condition":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor):
                moved[k] = v.to(device)
        return Condition(**moved)


class Denoiser(nn.Module):
    """Base class of denoiser networks.

    Subclasses take the data's ``num_nodes`` and ``num_channels`` plus their own
    hyper-parameters as constructor arguments; :meth:`config` returns them so the
    network can be rebuilt from a checkpoint. ``prediction`` names what the network
    outputs (``"eps"`` for the noise).
    """

    prediction: str = "eps"
    #: True for networks that generate one time step after another (TimeGrad). DiffusionModule
    #: then trains through ``autoregressive_loss(process, cond, observed, generator)`` and
    #: samples through ``sample_autoregressive(cond, draw)`` (see tsdiff.models.timegrad).
    autoregressive: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._config: dict = {}

    def config(self) -> dict:
        return dict(self._config)

    def check_data(self, signature: dict) -> None:
        """Refuse data this network cannot model (called by DiffusionModule with the data
        signature: task, context, num_nodes, ...). Raises ConfigError naming the fix."""

    def check_spatial(self, spatial) -> None:
        """Refuse spatial metadata this network cannot use (called by DiffusionModule with
        the data's ``Series.spatial``: None, a GraphSpatial or a GridSpatial; the same object
        arrives in every ``Condition.spatial``). Raises DataError naming the fix."""

    def enable_covariates(self, num_covariates: int, dim: int) -> None:
        """Give the network covariates: a linear map of ``Condition.covariates`` ``[B, L, K]`` to
        ``dim`` features per time step, which the network adds to its first hidden state (the one
        mechanism every family uses, :meth:`covariate_term`). Called last in ``__init__`` so that
        without covariates no parameter (and no random draw of initialisation) is added.

        The map starts at zero and draws no random numbers: a freshly built network with
        covariates computes exactly what the same network without them computes (same seed, same
        later random draws), and a covariate's weight grows in training only as far as the loss
        asks for it, instead of starting as random input the network must learn to ignore."""
        if not num_covariates:
            return
        if not isinstance(num_covariates, int) or isinstance(num_covariates, bool) or num_covariates < 0:
            raise ConfigError(f"model option num_covariates must be an integer >= 0, got {num_covariates!r}")
        self._config["num_covariates"] = num_covariates
        self.covariate_projection = nn.utils.skip_init(nn.Linear, num_covariates, dim)  # no random draw
        nn.init.zeros_(self.covariate_projection.weight)
        nn.init.zeros_(self.covariate_projection.bias)

    def covariate_term(self, cond: Condition) -> torch.Tensor | None:
        """``[B, L, dim]``: the projected covariates of ``cond`` (None for a network without them).

        Raises:
            DataError: covariates missing for a network trained with them, given to one trained
                without, or of the wrong width.
        """
        k = self._config.get("num_covariates", 0)
        cov = cond.covariates
        if not k:
            if cov is not None:
                raise DataError(f"{type(self).__name__} was built without covariates but the condition has "
                                f"{cov.shape[-1]}; rebuild it with model option num_covariates={cov.shape[-1]}")
            return None
        B, L = cond.values.shape[:2]
        if cov is None or tuple(cov.shape) != (B, L, k):
            got = "none" if cov is None else f"shape {tuple(cov.shape)}"
            raise DataError(f"{type(self).__name__} was trained with {k} covariate channels and needs "
                            f"Condition.covariates of shape [B, L, K] = {(B, L, k)}, got {got}")
        return self.covariate_projection(cov.to(cond.values.dtype))

    def check_input(self, x: torch.Tensor, cond: Condition) -> None:
        expected = (self._config["num_nodes"], self._config["num_channels"])
        if x.dim() != 4 or tuple(x.shape[2:]) != expected:
            raise DataError(
                f"{type(self).__name__} was built for [B, L, N, C] with (N, C) = {expected}, "
                f"got input of shape {tuple(x.shape)}"
            )
        if cond.values.shape != x.shape or cond.cond_mask.shape != x.shape:
            raise DataError(
                f"condition values/mask shapes {tuple(cond.values.shape)}/{tuple(cond.cond_mask.shape)} "
                f"must equal the input shape {tuple(x.shape)}"
            )


MODELS: Registry[type[Denoiser]] = Registry("model")


def build_model(config: dict, num_nodes: int, num_channels: int) -> Denoiser:
    """Build a registered network from its config section (``name`` + hyper-parameters).

    ``prediction`` (any network that denoises whole windows): what its output stands for,
    one of :data:`~tsdiff.diffusion.parametrization.PREDICTIONS` (default ``eps``); training
    and sampling convert through it.
    """
    config = dict(config)
    name = config.pop("name", None)
    prediction = config.pop("prediction", None)
    cls = MODELS.get(name)
    if config.get("num_covariates") and "num_covariates" not in inspect.signature(cls).parameters:
        able = [n for n in MODELS.names() if "num_covariates" in inspect.signature(MODELS.get(n)).parameters]
        raise ConfigError(f"model {name!r} cannot use covariates (it has no input for them); use one of "
                          f"{', '.join(able)}, or train without covariates (Forecaster(calendar=False) and no "
                          "covariates=)")
    if not config.get("num_covariates", 1):
        config.pop("num_covariates")
    check_options(cls, config, f"model {name!r}", fixed=("num_nodes", "num_channels"))
    if prediction is not None:
        _check_prediction(prediction)
        if cls.autoregressive and prediction != cls.prediction:
            raise ConfigError(f"model {name!r} generates one time step after another and predicts "
                              f"{cls.prediction!r} only; got prediction {prediction!r}")
    net = cls(num_nodes=num_nodes, num_channels=num_channels, **config)
    if prediction is not None:
        net.prediction = prediction
    return net
