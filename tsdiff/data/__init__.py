"""Data: canonical series layout, adapters, windowing, masking, scalers, dataset registry."""

from tsdiff.data.masking import TRAIN_MASKS
from tsdiff.data.protocol import DATASETS, Protocol, WindowDataset, build_protocol
from tsdiff.data.scalers import StandardScaler
from tsdiff.data.series import Series
from tsdiff.data import datasets  # noqa: F401  (registers datasets)

__all__ = ["DATASETS", "TRAIN_MASKS", "Protocol", "Series", "StandardScaler", "WindowDataset", "build_protocol"]
