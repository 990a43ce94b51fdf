"""Benchmark suites: a YAML grid of (model config or baseline) x task x seed.

A suite file::

    name: smoke                      # records go to <out>/<task>/<entry>__seed<k>.json
    seeds: [0, 1, 2]                 # default seeds of every entry
    metrics: [crps, mae, rmse]       # columns of the leaderboard (validated)
    n_samples: 100                   # samples per window of probabilistic entries (default)
    throttle_seconds: 0              # pause after each run (to share a machine)
    tasks:
      aqi36:                         # task name used in records and the leaderboard
        dataset: aqi36               # a registered protocol (tsdiff datasets list)
        options: {}                  # its data.options
        limit_windows: null          # score only the first k test windows (smoke runs)
    entries:
      - name: linear                 # row name in the leaderboard
        baseline: linear_interpolation   # a registered baseline (tsdiff.bench.baselines)
        options: {}                  # its options
        tasks: [aqi36]
      - name: csdi_small
        model: configs/imputation/csdi_aqi36.yaml  # a tsdiff config: trained then tested
        overrides: [trainer.max_epochs=1]          # applied on top (data.* is set by the task)
        tasks: [aqi36]
        seeds: [0]
        optional: true               # skip (with a message) if its model is not registered yet

Validation happens when a suite is loaded: an unknown task dataset, baseline, model,
metric, key or a task an entry does not define is an error naming the valid choices.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tsdiff.errors import ConfigError, UnknownNameError

#: Metric names a suite may list (keys of the records' ``metrics``).
METRICS = ("crps", "crps_sum", "mae", "rmse", "mre", "ensemble_crps", "energy_score", "coverage_50",
           "coverage_90", "qice")
#: Metrics where higher is not better; coverage is best near its nominal level.
COVERAGE_TARGETS = {"coverage_50": 0.5, "coverage_90": 0.9}

_SUITE_KEYS = {"name", "description", "seeds", "metrics", "n_samples", "throttle_seconds", "tasks", "entries"}
_TASK_KEYS = {"dataset", "options", "limit_windows", "split"}
_ENTRY_KEYS = {"name", "baseline", "model", "options", "overrides", "tasks", "seeds", "optional", "n_samples",
               "sampler", "steps"}


@dataclass
class TaskSpec:
    name: str
    dataset: str
    options: dict = field(default_factory=dict)
    limit_windows: int | None = None
    split: str = "test"


@dataclass
class EntrySpec:
    name: str
    tasks: list[str]
    seeds: list[int]
    baseline: str | None = None
    model: str | None = None  # config path
    options: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    optional: bool = False
    n_samples: int = 100
    sampler: str | None = None
    steps: int | None = None

    @property
    def kind(self) -> str:
        return "baseline" if self.baseline else "model"


@dataclass
class Run:
    """One cell of the grid."""

    suite: str
    task: TaskSpec
    entry: EntrySpec
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.suite}/{self.task.name}/{self.entry.name}/seed{self.seed}"

    def record_path(self, out_dir: Path) -> Path:
        return Path(out_dir) / self.task.name / f"{self.entry.name}__seed{self.seed}.json"


@dataclass
class Suite:
    name: str
    tasks: dict[str, TaskSpec]
    entries: list[EntrySpec]
    metrics: list[str]
    throttle_seconds: float = 0.0
    description: str = ""
    path: Path | None = None

    def runs(self) -> list[Run]:
        """The grid in a fixed order: entry by entry, task by task, seed by seed."""
        from tsdiff.bench.baselines import BASELINES

        out = []
        for e in self.entries:
            seeds = e.seeds
            if e.baseline and not BASELINES.get(e.baseline).seeded:
                seeds = seeds[:1]  # the seed does not change a deterministic baseline
            for t in e.tasks:
                out.extend(Run(self.name, self.tasks[t], e, s) for s in seeds)
        return out


def _unknown_keys(got: dict, valid: set, where: str) -> None:
    bad = sorted(set(got) - valid)
    if bad:
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, valid, 1)) else repr(k)
                 for k in bad]
        raise ConfigError(f"{where}: unknown key(s) {', '.join(hints)}; valid keys are {sorted(valid)}")


def _int_list(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
        raise ConfigError(f"{where} must be a non-empty list of integers, got {value!r}")
    return value


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {str(path)!r} does not exist (suites live in benchmarks/suites/)")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"suite {path}: expected a mapping at the top level")
    return parse_suite(raw, default_name=path.stem, path=path)


def parse_suite(raw: dict, default_name: str = "suite", path: Path | None = None) -> Suite:
    """Validate a suite given as a dict (the parsed YAML)."""
    from tsdiff.bench.baselines import BASELINES
    from tsdiff.data.protocol import DATASETS

    where = f"suite {str(path) if path else default_name!r}"
    _unknown_keys(raw, _SUITE_KEYS, where)
    name = str(raw.get("name", default_name))
    seeds = _int_list(raw.get("seeds", [0]), f"{where}: seeds")
    metrics = raw.get("metrics", ["crps", "mae", "rmse"])
    for m in metrics:
        if m not in METRICS:
            raise UnknownNameError(f"{where}: unknown metric {m!r}; valid metrics are: {', '.join(METRICS)}")
    n_samples = raw.get("n_samples", 100)

    tasks = {}
    for tname, t in (raw.get("tasks") or {}).items():
        t = dict(t or {})
        _unknown_keys(t, _TASK_KEYS, f"{where}: task {tname!r}")
        if "dataset" not in t:
            raise ConfigError(f"{where}: task {tname!r} needs a dataset; registered: {', '.join(DATASETS.names())}")
        if t["dataset"] not in DATASETS:
            raise UnknownNameError(f"{where}: task {tname!r}: unknown dataset {t['dataset']!r}; valid dataset "
                                   f"names are: {', '.join(DATASETS.names())}")
        from tsdiff.registry import check_options

        check_options(DATASETS.get(t["dataset"]), dict(t.get("options") or {}),
                      f"{where}: task {tname!r}: dataset {t['dataset']!r} (options)", fixed=("data_dir",))
        lw = t.get("limit_windows")
        if lw is not None and (not isinstance(lw, int) or lw < 1):
            raise ConfigError(f"{where}: task {tname!r}: limit_windows must be an integer >= 1 or null, got {lw!r}")
        tasks[tname] = TaskSpec(tname, t["dataset"], dict(t.get("options") or {}), lw, t.get("split", "test"))
    if not tasks:
        raise ConfigError(f"{where}: no tasks defined")

    entries, seen = [], set()
    for i, e in enumerate(raw.get("entries") or []):
        e = dict(e or {})
        ename = e.get("name") or e.get("baseline") or (Path(e["model"]).stem if e.get("model") else None)
        ewhere = f"{where}: entry {ename or i!r}"
        _unknown_keys(e, _ENTRY_KEYS, ewhere)
        if bool(e.get("baseline")) == bool(e.get("model")):
            raise ConfigError(f"{ewhere}: give exactly one of 'baseline' (a registered baseline) or 'model' "
                              "(a tsdiff config file)")
        etasks = e.get("tasks") or list(tasks)
        for t in etasks:
            if t not in tasks:
                raise UnknownNameError(f"{ewhere}: unknown task {t!r}; tasks of this suite are: "
                                       f"{', '.join(sorted(tasks))}")
            if (ename, t) in seen:  # one name may cover several entries (e.g. one config per dataset)
                raise ConfigError(f"{ewhere}: a second entry named {ename!r} on task {t!r}; entry names must be "
                                  "unique within a task")
            seen.add((ename, t))
        spec = EntrySpec(name=str(ename), tasks=list(etasks), seeds=_int_list(e.get("seeds", seeds), f"{ewhere}: seeds"),
                         baseline=e.get("baseline"), model=e.get("model"), options=dict(e.get("options") or {}),
                         overrides=[str(o) for o in e.get("overrides") or []], optional=bool(e.get("optional", False)),
                         n_samples=int(e.get("n_samples", n_samples)), sampler=e.get("sampler"), steps=e.get("steps"))
        if spec.baseline:
            b = BASELINES.get(spec.baseline)  # unknown name: lists the valid ones
            from tsdiff.registry import check_options

            check_options(b.factory, spec.options, f"{ewhere}: baseline {spec.baseline!r} (options)",
                          fixed=("protocol", "seed"))
            for t in spec.tasks:
                if task_kind(tasks[t]) not in b.tasks:
                    raise ConfigError(f"{ewhere}: baseline {spec.baseline!r} applies to {'/'.join(b.tasks)} "
                                      f"tasks, but task {t!r} ({tasks[t].dataset}) is {task_kind(tasks[t])}")
        else:
            check_model_entry(spec, ewhere, path)
        entries.append(spec)
    if not entries:
        raise ConfigError(f"{where}: no entries defined")
    return Suite(name, tasks, entries, list(metrics), float(raw.get("throttle_seconds", 0.0)),
                 str(raw.get("description", "")), path)


def task_kind(task: TaskSpec) -> str:
    """``"forecasting"`` or ``"imputation"``: a dataset with a ``task`` option (``file``) says so
    in it; otherwise forecasting protocols are those with a ``horizon`` or ``context`` option."""
    from tsdiff.data.protocol import DATASETS
    import inspect

    params = inspect.signature(DATASETS.get(task.dataset)).parameters
    if "task" in params:
        return task.options.get("task", params["task"].default)
    return "forecasting" if "horizon" in params or "context" in params else "imputation"


def resolve_config_path(model: str, suite_path: Path | None) -> Path:
    p = Path(model)
    if p.is_file():
        return p
    for base in ([suite_path.parent] if suite_path else []) + [Path.cwd()]:
        for cand in (base / p, base.parent.parent / p):
            if cand.is_file():
                return cand
    raise ConfigError(f"model config {model!r} not found (paths are relative to the working directory or the "
                      "repository root, e.g. configs/imputation/csdi_aqi36.yaml)")


def model_name(spec: EntrySpec, suite_path: Path | None) -> str | None:
    """The ``model.name`` of an entry's config; None if an optional entry's config does not exist yet."""
    from tsdiff.config import load_config

    try:
        path = resolve_config_path(spec.model, suite_path)
    except ConfigError:
        if spec.optional:
            return None
        raise
    cfg = load_config(path, [o for o in spec.overrides if o.startswith("model.")])
    return cfg["model"]["name"]


def check_model_entry(spec: EntrySpec, where: str, suite_path: Path | None) -> None:
    """Unknown model names are errors unless the entry is ``optional`` (then skipped at run time)."""
    from tsdiff.models import MODELS

    name = model_name(spec, suite_path)
    if name is not None and name not in MODELS and not spec.optional:
        raise UnknownNameError(f"{where}: unknown model {name!r}; valid model names are: {', '.join(MODELS.names())} "
                               "(mark the entry 'optional: true' to skip it until the model exists)")
