"""Benchmark harness: result records, suites, baselines and peers, the runner, the leaderboard.

- :mod:`tsdiff.bench.records`: one JSON record per evaluation (``make_record`` / ``write_record``).
- :mod:`tsdiff.bench.suite`: suite YAML files, a grid of (model or baseline) x task x seed.
- :mod:`tsdiff.bench.baselines`: scikit-learn, GluonTS and PyPOTS baselines / peers on the
  protocol's own windows.
- :mod:`tsdiff.bench.runner`: resumable ``tsdiff bench run``.
- :mod:`tsdiff.bench.report`: ``tsdiff bench report`` -> ``benchmarks/LEADERBOARD.md`` + plots.
"""
