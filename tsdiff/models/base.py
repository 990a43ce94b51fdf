"""The denoiser contract shared by every network.

``net(x_noisy, noise_level, cond) -> prediction``: ``x_noisy`` is ``[B, L, N, C]``,
``noise_level`` is ``[B]`` (the process's ``network_time``), ``cond`` a
:class:`Condition`. Networks never know which sampler runs them.
"""

from __future__ import annotations

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
    """

    values: torch.Tensor
    cond_mask: torch.Tensor
    timepoints: torch.Tensor | None = None
    spatial: Any = None
    prior: torch.Tensor | None = None

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
                       prior=rep(self.prior))

    def slice(self, lo: int, hi: int) -> "Condition":
        """Batch entries ``lo .. hi - 1`` (the same spatial metadata)."""
        cut = lambda t: None if t is None else t[lo:hi]  # noqa: E731
        return replace(self, values=self.values[lo:hi], cond_mask=self.cond_mask[lo:hi],
                       timepoints=cut(self.timepoints), prior=cut(self.prior))

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
