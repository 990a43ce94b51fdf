"""Training and sampling on real AQI-36 windows, model files, and the CLI end to end."""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from tsdiff.cli import main
from tsdiff.errors import DataError, TsdiffError
from tsdiff.training import DiffusionModule
from tsdiff.training.checkpoint import check_signature, load_model, save_model
from tsdiff.data.scalers import to_data_units
from tsdiff.training.evaluate import evaluate

SMALL_MODEL = {"name": "csdi", "layers": 2, "channels": 32, "heads": 4, "ff_dim": 32,
               "diffusion_embedding_dim": 64, "time_embedding_dim": 32, "feature_embedding_dim": 8}
PROCESS = {"name": "ddpm", "num_steps": 50, "schedule": "quadratic", "beta_start": 1e-4, "beta_end": 0.5}
OPTIM = {"lr": 1e-3, "weight_decay": 1e-6, "milestones": [0.75, 0.9], "gamma": 0.1}


def _module(protocol, seed=0, model=SMALL_MODEL):
    torch.manual_seed(seed)
    return DiffusionModule(model=model, process=PROCESS, optim=OPTIM, train_mask="mix",
                           signature=protocol.signature, scaler=protocol.scaler.state_dict(), config={"seed": seed})


def _batch(dataset, idx):
    return next(iter(DataLoader(Subset(dataset, idx), batch_size=len(idx))))


def probe_loss_before_after(module, train, steps: int, lr: float) -> tuple[float, float]:
    """The loss on 31 fixed training windows (all months, fixed noise) before and after ``steps``
    Adam steps of ``module.diffusion_loss`` on shuffled batches of 16."""
    probe = _batch(train, list(range(0, 4914, 160)))

    def probe_loss():
        module.eval()
        with torch.no_grad():
            return module.diffusion_loss(probe, generator=torch.Generator().manual_seed(123)).item()

    before = probe_loss()
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    loader = DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    module.train()
    for step, batch in enumerate(loader):
        loss = module.diffusion_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == steps - 1:
            break
    return before, probe_loss()


def test_loss_decreases_on_real_windows(aqi36):
    before, after = probe_loss_before_after(_module(aqi36), aqi36.dataset("train"), 40, 1e-3)
    # zero-initialised output layer: the untrained loss is E[eps^2] ~ 1
    assert 0.8 < before < 1.2
    assert after < 0.75 * before, (before, after)


def test_samples_shapes_masks_and_exact_observed_values(aqi36):
    module = _module(aqi36)
    test = aqi36.dataset("test")
    batch = _batch(test, [0, 1, 40])
    gen = torch.Generator().manual_seed(0)
    samples, nfe = module.sample(batch["x"], batch["cond_mask"], batch["timepoints"], n_samples=4,
                                 sampler="ddim", steps=5, generator=gen, chunk_size=5)
    assert samples.shape == (4, 3, 36, 36, 1) and nfe == 5
    cond = batch["cond_mask"]
    assert torch.equal(samples[:, cond], batch["x"][cond].expand(4, -1))  # scaled space, exact
    assert torch.isfinite(samples).all()
    assert not torch.equal(samples[0], samples[1])  # samples differ on targets
    data = to_data_units(samples, batch["y"].numpy(), cond.numpy(), module.scaler)
    y = batch["y"].numpy()
    for s in range(4):
        # observed (conditioning) values come back bit for bit in data units
        assert np.array_equal(data[s][cond.numpy()], y[cond.numpy()])
    assert np.isfinite(data).all()
    assert data.dtype == np.float64
    # chunking does not change the result
    again, _ = module.sample(batch["x"], cond, batch["timepoints"], n_samples=4, sampler="ddim", steps=5,
                             generator=torch.Generator().manual_seed(0), chunk_size=100)
    torch.testing.assert_close(again, samples, atol=1e-5, rtol=1e-5)


def test_trainer_predict_draws_the_samples_of_sample_batch_by_batch(aqi36):
    """predict_batches samples through lightning's Trainer.predict: each batch reaches the writer as
    it is drawn, and the samples equal those of calling module.sample batch after batch with one
    generator (bit for bit on the CPU)."""
    import lightning as L

    from tsdiff.training.prediction import predict_batches

    module = _module(aqi36)
    loader = DataLoader(Subset(aqi36.dataset("test"), [3, 4, 5]), batch_size=2)
    settings = {"n_samples": 2, "sampler": "ddim", "steps": 3}
    written, predicts = [], []
    real_predict = L.Trainer.predict

    def spy(self, *args, **kwargs):
        predicts.append(kwargs.get("return_predictions"))
        return real_predict(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(L.Trainer, "predict", spy)
        nfe = predict_batches(module, loader, lambda s, b: written.append((s.clone(), b["start"].clone())),
                              settings=settings, seed=5)
    assert predicts == [False]  # one Trainer.predict run that keeps no predictions
    assert nfe == 3 and [len(b) for _, b in written] == [2, 1]
    gen = torch.Generator().manual_seed(5)
    for (samples, starts), batch in zip(written, loader):
        expected, _ = module.sample(batch["x"], batch["cond_mask"], batch["timepoints"], generator=gen,
                                    anchors=batch.get("anchors"), starts=batch["start"], **settings)
        assert torch.equal(samples, expected) and torch.equal(starts, batch["start"])
        cond = batch["cond_mask"]
        assert torch.equal(samples[0][cond], batch["x"][cond])
    assert module.device.type == "cpu" and module.training  # left where and as it was (a fresh module trains)
    assert module._trainer is None  # and free of the prediction's trainer


def test_trainer_predict_precision_is_autocast_around_sampling(aqi36):
    """eval.precision bf16-mixed: Trainer.predict samples under bfloat16 autocast, exactly as
    module.sample inside torch.autocast (and differently from float32)."""
    from tsdiff.training.prediction import predict_batches

    module = _module(aqi36).eval()
    with torch.no_grad():  # CSDI's last layer starts at zero (eps = 0 at any precision): move every weight
        gen = torch.Generator().manual_seed(0)
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    loader = DataLoader(Subset(aqi36.dataset("test"), [3, 4]), batch_size=2)
    settings = {"n_samples": 2, "sampler": "ddim", "steps": 2}
    got = {}
    for precision in ("32-true", "bf16-mixed"):
        predict_batches(module, loader, lambda s, b: got.setdefault(precision, s.clone()), settings=settings,
                        seed=1, precision=precision)
    batch = next(iter(loader))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, _ = module.sample(batch["x"], batch["cond_mask"], batch["timepoints"],
                                    generator=torch.Generator().manual_seed(1), anchors=batch.get("anchors"),
                                    starts=batch["start"], **settings)
    assert torch.equal(got["bf16-mixed"], expected) and not torch.equal(got["bf16-mixed"], got["32-true"])


def test_save_load_identical_samples_and_safe_loading(aqi36, tmp_path):
    module = _module(aqi36)
    path = save_model(module, tmp_path / "model.pt", extra={"train_seconds": 1.5})
    loaded, extra = load_model(path)
    assert extra == {"train_seconds": 1.5}
    batch = _batch(aqi36.dataset("test"), [5])
    kw = dict(n_samples=3, sampler="ddpm", steps=4)
    a, _ = module.sample(batch["x"], batch["cond_mask"], batch["timepoints"], generator=torch.Generator().manual_seed(7), **kw)
    b, _ = loaded.sample(batch["x"], batch["cond_mask"], batch["timepoints"], generator=torch.Generator().manual_seed(7), **kw)
    c, _ = loaded.sample(batch["x"], batch["cond_mask"], batch["timepoints"], generator=torch.Generator().manual_seed(8), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # a pickle that would run code is refused, and the code never runs
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"format": "tsdiff-model-v1", "hparams": Evil()}, fh)
    with pytest.raises(TsdiffError, match="not a loadable tsdiff model file"):
        load_model(evil)
    assert not marker.exists()
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(TsdiffError, match="not a tsdiff model file"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(TsdiffError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_signature_mismatch_is_refused(aqi36):
    sig = dict(aqi36.signature)
    other = dict(sig, num_nodes=35, node_names=sig["node_names"][:35])
    with pytest.raises(DataError, match="num_nodes is 35 in the data but 36 in the model"):
        check_signature(sig, other)
    check_signature(sig, dict(sig))


def test_evaluate_scores_only_held_out_entries(aqi36):
    module = _module(aqi36)
    res = evaluate(module, aqi36, "test", n_samples=2, sampler="ddim", steps=2, limit_windows=3, progress=False)
    ds = aqi36.dataset("test")
    expected = sum(int(ds[i]["score_mask"].sum()) for i in range(3))
    assert res["metrics"]["n_targets"] == expected
    assert res["nfe"] == 2 and res["n_windows"] == 3
    assert all(np.isfinite(res["metrics"][k]) for k in ("crps", "mae", "rmse"))


CLI_TINY = [
    "model.layers=1", "model.channels=16", "model.heads=2", "model.ff_dim=16",
    "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false", "eval.n_samples=2", "eval.sampler=ddim", "eval.steps=3",
    "eval.limit_windows=2",
]


def test_cli_fit_and_test_write_a_record(tmp_path, data_dir, capsys):
    cfg = "configs/imputation/csdi_aqi36.yaml"
    cfg = os.path.join(os.path.dirname(__file__), "..", cfg)
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}"]
    assert main(["fit", cfg, *CLI_TINY, *out, "--test"]) == 0
    assert (tmp_path / "run" / "model.pt").is_file()
    fit_info = json.loads((tmp_path / "run" / "fit.json").read_text())
    assert fit_info["global_steps"] == 3
    records = list((tmp_path / "records").glob("*.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    for key in ("task", "model", "sampler", "nfe", "n_samples", "seed", "metrics", "train_seconds",
                "sample_seconds", "hardware", "tsdiff_version", "git_commit", "config", "protocol"):
        assert key in rec, key
    assert rec["task"] == "aqi36_imputation" and rec["protocol"] == "aqi36-csdi"
    assert rec["nfe"] == 3 and rec["n_samples"] == 2 and rec["sampler"] == "ddim"
    assert all(np.isfinite(rec["metrics"][k]) for k in ("crps", "mae", "rmse"))
    assert rec["config"]["model"]["channels"] == 16
    # `tsdiff test` on the run directory, with an eval override, writes a second record
    assert main(["test", str(tmp_path / "run"), "eval.steps=2", "--no-progress"]) == 0
    assert len(list((tmp_path / "records").glob("*.json"))) == 2
    # model/process are fixed by the trained model
    assert main(["test", str(tmp_path / "run"), "model.channels=8"]) == 2
    assert "cannot be overridden" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["trainer.max_epoch=1"], "did you mean 'max_epochs'"),
        (["model.name=transformer"], "unknown model 'transformer'; valid model names are: csdi"),
        (["data.dataset=aqi99"], "unknown dataset 'aqi99'; valid dataset names are: aqi36"),
        (["data.data_dir=/nonexistent/dir"], "missing file(s) pm25_ground.txt"),
        (["model.heads=3"], "divisible by heads"),
        # eval settings are checked before training, not when --test or `tsdiff test` samples
        (["eval.sampler_options={bogus: 1}"], "unknown option(s) ['bogus'] for sampler 'ddpm'"),
        (["eval.sampler=ddmp"], "valid sampler names are: ddim, ddpm"),
        (["eval.conditioning=inpaint"], "valid conditioning names are"),
    ],
)
def test_cli_bad_input_is_a_clear_error(overrides, fragment, tmp_path, capsys):
    cfg = os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")
    code = main(["fit", cfg, *overrides, f"output.dir={tmp_path}/run", "trainer.max_epochs=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert fragment in err, err


@pytest.mark.parametrize(
    "sampler, options, steps, nfe",
    [("ddpm", {}, 3, 3), ("ddim", {"eta": 0.5}, 3, 3), ("euler_maruyama", {}, 3, 3),
     ("pc", {"n_corrector": 1, "snr": 0.1}, 3, 6), ("heun", {}, 3, 5), ("dpm_solver_pp", {}, 3, 3)],
)
def test_every_sampler_drives_the_trained_network(aqi36, sampler, options, steps, nfe):
    module = _module(aqi36)
    batch = _batch(aqi36.dataset("test"), [7])
    samples, got = module.sample(batch["x"], batch["cond_mask"], batch["timepoints"], n_samples=2, sampler=sampler,
                                 steps=steps, sampler_options=options, generator=torch.Generator().manual_seed(0))
    assert got == nfe
    assert samples.shape == (2, 1, 36, 36, 1) and torch.isfinite(samples).all()
    cond = batch["cond_mask"]
    assert torch.equal(samples[:, cond], batch["x"][cond].expand(2, -1))


def test_unknown_sampler_option_is_a_clear_error(tmp_path, data_dir, capsys):
    cfg = os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}"]
    assert main(["fit", cfg, *CLI_TINY, *out]) == 0
    assert main(["test", str(tmp_path / "run"), "eval.sampler=pc", "eval.sampler_options={snr: 0.1, nsteps: 2}"]) == 2
    assert "unknown option(s) ['nsteps'] for sampler 'pc'; valid options are: steps, spacing, n_corrector, snr" in capsys.readouterr().err
    assert main(["test", str(tmp_path / "run"), "eval.sampler=euler", "--no-progress"]) == 2
    assert "valid sampler names are: ddim, ddpm, dpm_solver_pp, euler_maruyama, heun, pc" in capsys.readouterr().err


def test_estimate_eps_sq_norm_averages_over_scored_entries_and_clips(aqi36, monkeypatch):
    # A network that predicts eps = 0.5 everywhere has E|eps_pred|^2 / d = 0.25 at every step;
    # near the prior end the estimate is raised to 1 - abar / (1 - abar) E x0^2, the least a
    # true Gamma can be, with E x0^2 the scaled targets' second moment, computed here directly.
    from tsdiff.training.evaluate import estimate_eps_sq_norm

    module = _module(aqi36)
    monkeypatch.setattr(module.net, "forward", lambda x_t, t, cond: torch.full_like(x_t, 0.5))
    gamma = estimate_eps_sq_norm(module, aqi36, "val", limit_windows=5, batch_size=2, seed=0)
    val = _batch(aqi36.dataset("val"), list(range(5)))
    target = val["score_mask"].numpy() & ~val["cond_mask"].numpy()
    x0 = module.scaler.transform(val["y"].numpy())[target]
    assert target.sum() > 0 and np.isfinite(x0).all()
    abar = module.process.alpha_bars.double().numpy()
    floor = 1.0 - abar / (1.0 - abar) * float(np.mean(x0**2))
    want = np.maximum(0.25, floor)
    assert len(gamma) == module.process.num_steps
    np.testing.assert_allclose(gamma, want, rtol=1e-6)
    assert want[0] == 0.25 and want[-1] > 0.25  # both branches of the clip are exercised


def test_estimate_eps_sq_norm_needs_discrete_ddpm(aqi36):
    from tsdiff.diffusion import build_process
    from tsdiff.errors import ConfigError
    from tsdiff.training.evaluate import estimate_eps_sq_norm

    module = _module(aqi36)
    module.process = build_process("vp")
    with pytest.raises(ConfigError, match="needs a discrete DDPM process; got 'vp'"):
        estimate_eps_sq_norm(module, aqi36, "val", limit_windows=2)


def test_estimate_eps_sq_norm_repeats_average_more_noise_draws(aqi36, monkeypatch):
    # A network that returns its noisy input makes the estimate depend on every noise draw, so
    # the mean over `repeats` draws can be written out with the same generator, in the
    # documented order (per step: per repeat: per batch).
    from tsdiff.errors import ConfigError
    from tsdiff.training.evaluate import estimate_eps_sq_norm

    module = _module(aqi36)
    monkeypatch.setattr(module.net, "forward", lambda x_t, t, cond: x_t)
    one = estimate_eps_sq_norm(module, aqi36, "val", limit_windows=3, batch_size=2, seed=5)
    assert one == estimate_eps_sq_norm(module, aqi36, "val", limit_windows=3, batch_size=2, seed=5, repeats=1)
    got = estimate_eps_sq_norm(module, aqi36, "val", limit_windows=3, batch_size=2, seed=5, repeats=3)
    batches = [_batch(aqi36.dataset("val"), [0, 1]), _batch(aqi36.dataset("val"), [2])]
    parts = []
    for b in batches:
        raw = b["y"].numpy()
        target = b["score_mask"].numpy() & ~b["cond_mask"].numpy() & ~np.isnan(raw)
        parts.append((torch.as_tensor(np.nan_to_num(module.scaler.transform(raw)), dtype=torch.float32),
                      torch.as_tensor(target)))
    count = sum(int(t.sum()) for _, t in parts)
    second = sum(float((x0.double() ** 2)[t].sum()) for x0, t in parts) / count
    abar = module.process.alpha_bars.double()
    gen = torch.Generator().manual_seed(5)
    want = []
    for step in range(module.process.num_steps):
        total = 0.0
        for _ in range(3):
            for x0, t in parts:
                noise = torch.randn(x0.shape, generator=gen)
                x_t = module.process.sample_noisy(x0, torch.full((x0.shape[0],), step), noise)
                total += float((x_t.double() ** 2)[t].sum())
        floor = max(0.0, 1.0 - float(abar[step] / (1.0 - abar[step])) * second)
        want.append(min(max(total / (3 * count), floor), 1.0))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got != one
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="repeats must be an integer >= 1"):
            estimate_eps_sq_norm(module, aqi36, "val", limit_windows=1, repeats=bad)


def test_sample_builds_no_autograd_graph(aqi36):
    module = _module(aqi36)
    batch = _batch(aqi36.dataset("test"), [3])
    samples, _ = module.sample(batch["x"], batch["cond_mask"], batch["timepoints"], n_samples=2, steps=2)
    assert not samples.requires_grad and samples.grad_fn is None


def test_sample_takes_the_analytic_variance_statistic_from_the_model(aqi36):
    # Gamma = 1 everywhere makes the analytic variance exactly beta_tilde (`small`), so the
    # stored statistic must give bit-identical samples to the default variance.
    from tsdiff.errors import ConfigError

    module = _module(aqi36)
    batch = _batch(aqi36.dataset("test"), [5, 6])
    args = (batch["x"], batch["cond_mask"], batch["timepoints"])
    options = {"variance": "analytic", "spacing": "log_snr"}
    with pytest.raises(ConfigError, match="holds none: run `tsdiff calibrate-variance MODEL`"):
        module.sample(*args, n_samples=2, steps=4, sampler_options=options)
    module.eps_sq_norm = [1.0] * module.process.num_steps
    got, _ = module.sample(*args, n_samples=2, steps=4, sampler_options=options,
                           generator=torch.Generator().manual_seed(3))
    want, _ = module.sample(*args, n_samples=2, steps=4, sampler_options={"spacing": "log_snr"},
                            generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, want)
    assert options == {"variance": "analytic", "spacing": "log_snr"}  # the caller's dict is not changed
    # options that carry their own eps_sq_norm win over the stored one
    module.eps_sq_norm = [0.5] * module.process.num_steps
    own, _ = module.sample(*args, n_samples=2, steps=4, generator=torch.Generator().manual_seed(3),
                           sampler_options={**options, "eps_sq_norm": [1.0] * module.process.num_steps})
    assert torch.equal(own, want)


def test_model_file_keeps_the_analytic_variance_statistic(aqi36, tmp_path):
    from tsdiff.errors import ConfigError
    from tsdiff.training.checkpoint import store_eps_sq_norm

    module = _module(aqi36)
    path = save_model(module, tmp_path / "plain.pt", extra={"note": "kept"})
    assert load_model(path)[0].eps_sq_norm is None
    gamma = [0.1 + 0.9 * t / 49 for t in range(50)]
    before = path.read_bytes()
    out = store_eps_sq_norm(path, gamma, out=tmp_path / "cal.pt")
    assert path.read_bytes() == before  # the input file is not changed when out is given
    loaded, extra = load_model(out)
    assert loaded.eps_sq_norm == gamma and extra == {"note": "kept"}
    for name, tensor in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with pytest.raises(ConfigError, match="eps_sq_norm must hold 50 finite numbers"):
        store_eps_sq_norm(path, gamma[:10])
    assert path.read_bytes() == before
    store_eps_sq_norm(path, gamma)  # in place
    assert load_model(path)[0].eps_sq_norm == gamma


def test_cli_calibrate_variance_and_fit_with_the_analytic_variance(tmp_path, data_dir, aqi36, capsys):
    from tsdiff.training.evaluate import estimate_eps_sq_norm

    cfg = os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}"]
    analytic = ["eval.sampler=ddpm", "eval.sampler_options={variance: analytic, spacing: log_snr}"]
    # a config that samples with the analytic variance gets the estimate stored by `fit`
    assert main(["fit", cfg, *CLI_TINY, *out, *analytic, "--test"]) == 0
    assert "estimated eps_sq_norm" in capsys.readouterr().out
    fitted, _ = load_model(tmp_path / "run" / "model.pt")
    stored = fitted.eps_sq_norm
    fitted.eps_sq_norm = None
    assert stored == estimate_eps_sq_norm(fitted, aqi36, "val", seed=42)
    assert len(list((tmp_path / "records").glob("*.json"))) == 1
    # calibrate-variance writes a copy with its own estimate; the input file is left alone
    before = (tmp_path / "run" / "model.pt").read_bytes()
    args = ["calibrate-variance", str(tmp_path / "run"), "--limit-windows", "4", "--repeats", "2", "--seed", "1"]
    assert main([*args, "--out", str(tmp_path / "cal.pt")]) == 0
    assert "stored eps_sq_norm (50 steps" in capsys.readouterr().out
    assert (tmp_path / "run" / "model.pt").read_bytes() == before
    cal, _ = load_model(tmp_path / "cal.pt")
    assert cal.eps_sq_norm == estimate_eps_sq_norm(fitted, aqi36, "val", limit_windows=4, repeats=2, seed=1)
    assert main(["test", str(tmp_path / "cal.pt"), *analytic, "eval.steps=3", "--no-progress"]) == 0
    # a model file without the estimate: a clear error naming the fix
    save_model(fitted, tmp_path / "plain.pt")
    assert main(["test", str(tmp_path / "plain.pt"), *analytic, "eval.steps=3", "--no-progress"]) == 2
    assert "run `tsdiff calibrate-variance MODEL`" in capsys.readouterr().err
    for bad, fragment in ((["--repeats", "0"], "repeats must be an integer >= 1"),
                          (["--limit-windows", "-1"], "--limit-windows must be >= 0"),
                          (["--split", "tset"], "protocol 'aqi36-csdi' has no split 'tset'; splits are")):
        assert main(["calibrate-variance", str(tmp_path / "cal.pt"), *bad]) == 2
        assert fragment in capsys.readouterr().err


def test_fit_refuses_the_analytic_variance_without_a_ddpm_process(tmp_path, data_dir, capsys):
    import yaml

    with open(os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")) as fh:
        config = yaml.safe_load(fh)
    config["process"] = {"name": "vp"}
    cfg = tmp_path / "vp.yaml"
    cfg.write_text(yaml.safe_dump(config))
    code = main(["fit", str(cfg), *CLI_TINY, f"output.dir={tmp_path}/run", f"data.data_dir={data_dir}",
                 "eval.sampler=ddpm", "eval.sampler_options={variance: analytic}"])
    assert code == 2
    assert "variance: analytic needs a discrete DDPM process" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.pt").exists()


def test_fit_saves_the_model_when_the_analytic_statistic_cannot_be_estimated(tmp_path, data_dir, capsys, monkeypatch):
    import tsdiff.training.evaluate as ev

    def no_entries(*args, **kwargs):
        raise DataError("split 'val' has no scored entry to estimate eps_sq_norm on")

    monkeypatch.setattr(ev, "estimate_eps_sq_norm", no_entries)
    cfg = os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")
    assert main(["fit", cfg, *CLI_TINY, f"output.dir={tmp_path}/run", f"data.data_dir={data_dir}",
                 "eval.sampler=ddpm", "eval.sampler_options={variance: analytic}"]) == 0
    out = capsys.readouterr().out
    assert "warning: no eps_sq_norm for variance: analytic (split 'val' has no scored entry" in out
    module, extra = load_model(tmp_path / "run" / "model.pt")
    assert module.eps_sq_norm is None and extra["global_steps"] == 3
