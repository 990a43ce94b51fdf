"""Dataset modules (one per dataset: its files and protocol); importing this package registers every
dataset protocol. (In tsdiff a *source* is a lazy reader, ``shape`` + ``window(start, length)``:
:mod:`tsdiff.data.lazy`; a *user file* is a CSV or netCDF a user hands in: :mod:`tsdiff.userfiles`.)

- :data:`SPECS` maps each registered protocol name (``DATASETS``) to the
  :class:`~tsdiff.data.datasets.base.DatasetSpec` of the files it reads.
- :data:`FILE_SPECS` lists every dataset whose files tsdiff knows, by dataset name
  (including graph-only files that no protocol reads on its own), for
  ``tsdiff datasets verify``.
- :data:`PAPER_PROTOCOLS` maps the numbered protocols of the project's benchmark
  protocol list (PROTOCOLS.md) to the registered names that implement them.
"""

from tsdiff.data.datasets import (  # noqa: F401  (register protocols)
    aqi36, era5, era5_protocol, ett, files, lstnet, metr_la, metr_la_protocol, pems, physionet, physionet_protocol,
    traffic,
)

SPECS = {
    "aqi36": aqi36.SPEC,
    "era5": era5.SPEC,
    "era5_impute": era5.SPEC,
    "etth1": ett.SPEC,
    "exchange_rate": lstnet.SPEC,
    "metr_la": metr_la.SPEC,
    "metr_la_impute": metr_la.SPEC,
    "metr_la_full": traffic.METR_LA_FULL_SPEC,
    "pems_bay": traffic.PEMS_BAY_FULL_SPEC,
    "physionet2012": physionet.SPEC,
    **{name: info.spec for name, info in lstnet.LSTNET_LARGE.items()},
    **{name: spec for name, (spec, _) in traffic.PEMS_FLOW.items()},
}

FILE_SPECS = {
    spec.name: spec
    for spec in [
        aqi36.SPEC, physionet.SPEC, lstnet.SPEC, *(i.spec for i in lstnet.LSTNET_LARGE.values()), ett.SPEC,
        metr_la.SPEC, traffic.METR_LA_FULL_SPEC, pems.PEMS_BAY_SPEC, traffic.PEMS_BAY_FULL_SPEC,
        *pems.PEMS_SPECS.values(), *(spec for spec, _ in traffic.PEMS_FLOW.values()), era5.SPEC,
    ]
}

#: PROTOCOLS.md protocol number -> registered dataset names that implement it.
PAPER_PROTOCOLS = {
    1: ("aqi36",),
    2: ("physionet2012",),
    3: ("exchange_rate",),
    4: ("metr_la", "metr_la_impute"),
    5: ("era5", "era5_impute"),
    6: ("etth1",),
}


def protocol_number(name: str) -> int | None:
    """The PROTOCOLS.md number a registered dataset name implements, or None."""
    for number, names in PAPER_PROTOCOLS.items():
        if name in names:
            return number
    return None
