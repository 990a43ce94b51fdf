"""Fault tolerance: training killed mid-epoch resumes to the same end state; atomic files.

The reference is an uninterrupted run with the same seed in deterministic mode
(``trainer.deterministic=true``: Lightning turns on
``torch.use_deterministic_algorithms``). The interrupted run stops inside epoch 2,
either by an exception raised from a callback (default suite) or by a real SIGKILL
of a child process (integration); ``--resume`` / ``trainer.resume=true`` then
continues from the newest checkpoint. Final weights, optimiser state and validation
losses must be bit-identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch

import tsdiff.experiment as experiment
from tsdiff.cli import main
from tsdiff.config import load_config
from tsdiff.errors import ConfigError, DataError, TsdiffError
from tsdiff.io import atomic_write, read_json, write_json
from tsdiff.training.checkpoint import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/imputation/csdi_aqi36.yaml")
# 2 epochs x 4 steps, a rolling checkpoint every 2 steps; the kill comes after step 7
# (epoch 2, 3rd batch), so the resumed run restarts from step 6 and redoes step 7.
TINY = [
    "model.layers=1", "model.channels=16", "model.heads=2", "model.ff_dim=16",
    "model.diffusion_embedding_dim=16", "model.time_embedding_dim=16", "model.feature_embedding_dim=4",
    "trainer.max_epochs=2", "trainer.limit_train_batches=4", "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false", "trainer.deterministic=true", "trainer.checkpoint_every_n_steps=2",
    "trainer.log_every_n_steps=1", "data.batch_size=4",
]
KILL_AFTER_STEP = 7


@pytest.fixture(autouse=True)
def _restore_determinism_flag():
    """Lightning's deterministic=True switches a process-wide torch flag on; switch it back."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


class Crash(Exception):
    """Stands for a process dying in the middle of training."""


class CrashAfter(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"simulated crash after step {self.step}")


def _cfg(out: Path, data_dir, *extra: str) -> dict:
    return load_config(CONFIG, [*TINY, f"output.dir={out}", f"data.data_dir={data_dir}", *extra])


def _fit(cfg: dict, monkeypatch=None, crash_after: int | None = None) -> Path | None:
    if crash_after is not None:
        build = experiment._trainer

        def with_crash(cfg, out):
            trainer = build(cfg, out)
            trainer.callbacks.append(CrashAfter(crash_after))
            return trainer

        monkeypatch.setattr(experiment, "_trainer", with_crash)
        with pytest.raises(Crash):
            experiment.fit(cfg)
        monkeypatch.setattr(experiment, "_trainer", build)
        return None
    return experiment.fit(cfg)


def _val_losses(out: Path) -> list[tuple[int, float]]:
    rows = []
    for csv in sorted((out / "logs").glob("version_*/metrics.csv")):
        lines = csv.read_text().splitlines()
        head = lines[0].split(",")
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("val_loss"):
                rows.append((int(row["step"]), float(row["val_loss"])))
    return rows


def _assert_same_end_state(a: Path, b: Path) -> None:
    ma = torch.load(a / "model.pt", weights_only=True)
    mb = torch.load(b / "model.pt", weights_only=True)
    assert ma["state_dict"].keys() == mb["state_dict"].keys()
    for key in ma["state_dict"]:
        assert torch.equal(ma["state_dict"][key], mb["state_dict"][key]), key
    la = torch.load(a / "checkpoints/last.ckpt", weights_only=True)
    lb = torch.load(b / "checkpoints/last.ckpt", weights_only=True)
    assert la["global_step"] == lb["global_step"] == 8 and la["epoch"] == lb["epoch"]
    for key in la["state_dict"]:  # the last weights, not only the best ones
        assert torch.equal(la["state_dict"][key], lb["state_dict"][key]), key
    oa, ob = la["optimizer_states"][0]["state"], lb["optimizer_states"][0]["state"]
    assert oa.keys() == ob.keys()
    for k in oa:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(oa[k][name], ob[k][name]), (k, name)
    assert la["lr_schedulers"] == lb["lr_schedulers"]
    fa, fb = read_json(a / "fit.json"), read_json(b / "fit.json")
    assert fa["best_val_loss"] == fb["best_val_loss"] and fa["global_steps"] == fb["global_steps"] == 8
    assert _val_losses(a) == _val_losses(b) and len(_val_losses(a)) == 2


def test_killed_mid_epoch_then_resumed_equals_uninterrupted(tmp_path, data_dir, monkeypatch):
    ref, run = tmp_path / "ref", tmp_path / "run"
    _fit(_cfg(ref, data_dir))
    _fit(_cfg(run, data_dir), monkeypatch, crash_after=KILL_AFTER_STEP)
    assert not (run / "model.pt").exists()
    step = torch.load(run / "checkpoints/step.ckpt", weights_only=True)
    assert step["global_step"] == 6 and step["epoch"] == 1  # mid-epoch: 2 of 4 batches of epoch 2 done
    assert experiment.resume_checkpoint(_cfg(run, data_dir, "trainer.resume=true")) == run / "checkpoints/step.ckpt"
    _fit(_cfg(run, data_dir, "trainer.resume=true"))
    _assert_same_end_state(ref, run)
    # the interrupted run's weights really differed from the reference before resuming
    ref_last = torch.load(ref / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert any(not torch.equal(step["state_dict"][k], ref_last[k]) for k in ref_last)


def test_resume_choices_and_errors(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    cfg = _cfg(out, data_dir, "trainer.resume=true")
    assert experiment.resume_checkpoint(cfg) is None  # nothing yet: start from scratch
    assert experiment.resume_checkpoint(_cfg(out, data_dir)) is None  # resume off
    with pytest.raises(ConfigError, match="trainer.resume: checkpoint '/nonexistent.ckpt' does not exist"):
        experiment.resume_checkpoint(_cfg(out, data_dir, "trainer.resume=/nonexistent.ckpt"))
    with pytest.raises(ConfigError, match="trainer.resume must be true/false or the path of a .ckpt file, got 3"):
        _cfg(out, data_dir, "trainer.resume=3")
    # a truncated checkpoint (e.g. disk full while copying) is skipped, never resumed from
    ckpts = out / "checkpoints"
    ckpts.mkdir(parents=True)
    torch.save({"global_step": 4, "state_dict": {}}, ckpts / "last.ckpt")
    good = (ckpts / "last.ckpt").read_bytes()
    torch.save({"global_step": 6, "state_dict": {"w": torch.zeros(1000)}}, ckpts / "step.ckpt")
    (ckpts / "step.ckpt").write_bytes((ckpts / "step.ckpt").read_bytes()[:300])
    with pytest.warns(UserWarning, match="skipping an unreadable checkpoint.*step.ckpt"):
        assert experiment.resume_checkpoint(cfg) == ckpts / "last.ckpt"
    with pytest.raises(ConfigError, match="cannot be resumed from"):
        experiment.resume_checkpoint(_cfg(out, data_dir, f"trainer.resume={ckpts / 'step.ckpt'}"))
    assert (ckpts / "last.ckpt").read_bytes() == good


@pytest.mark.integration
def test_sigkilled_process_resumes_with_cli_flag(tmp_path, data_dir):
    """A real SIGKILL of the training process; `tsdiff fit ... --resume` finishes the run."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(["fit", CONFIG, *TINY, f"output.dir={ref}", f"data.data_dir={data_dir}"]) == 0
    script = textwrap.dedent(f"""
        import os, signal, sys
        import torch
        torch.set_num_threads({torch.get_num_threads()})  # float sums depend on the thread count
        import lightning as L
        import tsdiff.experiment as ex
        from tsdiff.cli import main

        class Kill(L.Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step == {KILL_AFTER_STEP}:
                    os.kill(os.getpid(), signal.SIGKILL)

        build = ex._trainer
        def with_kill(cfg, out):
            trainer = build(cfg, out)
            trainer.callbacks.append(Kill())
            return trainer
        ex._trainer = with_kill
        sys.exit(main(sys.argv[1:]))
    """)
    args = ["fit", CONFIG, *TINY, f"output.dir={run}", f"data.data_dir={data_dir}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (run / "model.pt").exists() and (run / "checkpoints/step.ckpt").is_file()
    assert main([*args, "--resume"]) == 0
    _assert_same_end_state(ref, run)


# --- atomic files -------------------------------------------------------------------


def test_crash_inside_model_write_keeps_the_previous_file(tmp_path, aqi36, monkeypatch):
    from tests.test_training import _module

    module = _module(aqi36)
    path = save_model(module, tmp_path / "model.pt", extra={"version": 1})
    before = path.read_bytes()
    real_save = torch.save

    def dying_save(obj, fh, *args, **kwargs):
        real_save(obj, fh, *args, **kwargs)
        fh.truncate(fh.tell() // 2)  # half of the bytes are out, then the process "dies"
        raise Crash("killed while writing")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(Crash):
        save_model(module, path, extra={"version": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before  # the old complete file, never a truncated one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary left behind
    assert load_model(path)[1] == {"version": 1}


def test_hard_kill_inside_write_never_exposes_a_partial_file(tmp_path):
    """``os._exit`` in the middle of a write (no cleanup runs): the target never appears."""
    target = tmp_path / "record.json"
    script = textwrap.dedent(f"""
        import os
        from tsdiff.io import atomic_write
        def write(fh):
            fh.write('{{"metrics": {{"crps": 0.1')
            fh.flush()
            os._exit(9)
        atomic_write({str(target)!r}, write, mode="w")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".record.json.")  # a hidden temporary only
    assert leftovers[0].read_text() == '{"metrics": {"crps": 0.1'


def test_truncated_files_are_clear_errors(tmp_path, aqi36):
    from tests.test_training import _module

    path = save_model(_module(aqi36), tmp_path / "model.pt")
    data = path.read_bytes()
    for cut in (len(data) // 2, 100, 1):
        path.write_bytes(data[:cut])
        with pytest.raises(TsdiffError, match="is not a loadable tsdiff model file"):
            load_model(path)
    path.write_bytes(b"")
    with pytest.raises(TsdiffError, match="is not a loadable tsdiff model file"):
        load_model(path)
    record = write_json(tmp_path / "rec.json", {"metrics": {"crps": 0.25}, "seed": 1})
    assert read_json(record) == {"metrics": {"crps": 0.25}, "seed": 1}
    text = record.read_text()
    record.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="is not a complete JSON document.*truncated or corrupt"):
        read_json(record)
    with pytest.raises(DataError, match="does not exist"):
        read_json(tmp_path / "missing.json")


def test_atomic_write_failure_in_writer_leaves_nothing(tmp_path):
    def boom(fh):
        fh.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "x.bin", boom)
    assert list(tmp_path.iterdir()) == []
    atomic_write(tmp_path / "x.bin", lambda fh: fh.write(b"ok"))
    assert (tmp_path / "x.bin").read_bytes() == b"ok"
    assert json.loads(write_json(tmp_path / "y.json", [1, 2]).read_text()) == [1, 2]


def test_atomic_write_keeps_permissions_and_follows_the_umask(tmp_path):
    # mkstemp creates 0o600 files; a model file rewritten in place (tsdiff calibrate-variance)
    # or a new record must not silently lose the permissions others rely on.
    import stat

    umask = os.umask(0o022)
    try:
        new = atomic_write(tmp_path / "new.bin", lambda fh: fh.write(b"x"))
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o644
        os.chmod(new, 0o640)
        atomic_write(new, lambda fh: fh.write(b"y"))
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o640 and new.read_bytes() == b"y"
    finally:
        os.umask(umask)
