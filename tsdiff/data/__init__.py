"""Data: canonical series layout, adapters, windowing, masking, scalers, dataset registry."""

from tsdiff.data.masking import TRAIN_MASKS
from tsdiff.data.protocol import DATASETS, ImputationProtocol, Protocol, WindowDataset, build_protocol
from tsdiff.data.scalers import StandardScaler
from tsdiff.data.series import Series
from tsdiff.data import sources  # noqa: F401  (registers datasets)

__all__ = ["DATASETS", "TRAIN_MASKS", "ImputationProtocol", "Protocol", "Series", "StandardScaler", "WindowDataset", "build_protocol"]
