"""TimeGrad: shapes, causality of teacher forcing, autoregressive sampling, real-data training, bad input."""

import json
import os

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, Subset

from tsdiff.cli import main
from tsdiff.config import load_config
from tsdiff.diffusion import build_process, build_sampler, masked_eps_loss
from tsdiff.errors import ConfigError, DataError
from tsdiff.models import MODELS, Condition, build_model
from tsdiff.training import DiffusionModule
from tsdiff.training.checkpoint import load_model, save_model

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "forecasting", "timegrad_exchange_rate.yaml")
TINY = {"name": "timegrad", "hidden_size": 12, "rnn_layers": 2, "lags": [1, 3], "time_feature_dim": 4,
        "series_embedding_dim": 2, "residual_layers": 3, "residual_channels": 4, "diffusion_embedding_dim": 8,
        "diffusion_hidden_dim": 16}
PROCESS = {"name": "ddpm", "num_steps": 20, "schedule": "linear", "beta_start": 1e-4, "beta_end": 0.1}
OPTIM = {"lr": 1e-3, "weight_decay": 0.0, "milestones": [], "gamma": 0.1}


def _net(N=5, C=2, **kw):
    torch.manual_seed(0)
    net = build_model({**TINY, **kw}, N, C)
    torch.nn.init.normal_(net.output_projection.weight)  # zero-initialised; randomise for a signal
    return net.eval()


def _signature(N, C, L, context, task="forecasting"):
    return {"protocol": "synthetic", "task": task, "num_nodes": N, "num_channels": C, "window": L,
            "context": context, "node_names": [str(i) for i in range(N)], "channel_names": [str(c) for c in range(C)]}


def _module(N=5, C=2, L=10, context=6, model=None, process=PROCESS):
    torch.manual_seed(0)
    scaler = {"kind": "standard", "mean": [[0.0] * C] * N, "std": [[1.0] * C] * N}
    module = DiffusionModule(model=model or TINY, process=process, optim=OPTIM, train_mask="mix",
                             signature=_signature(N, C, L, context), scaler=scaler, config={"seed": 0})
    torch.nn.init.normal_(module.net.output_projection.weight)
    return module.eval()


def _window(B=2, L=10, N=5, C=2, context=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, N, C, generator=g)
    cond_mask = torch.zeros(B, L, N, C, dtype=torch.bool)
    cond_mask[:, :context] = True
    return x, cond_mask, torch.arange(L, dtype=torch.float32).expand(B, L)


# --- model ------------------------------------------------------------------------------------

def test_registry_and_paper_defaults():
    assert "timegrad" in MODELS
    net = build_model({"name": "timegrad"}, 8, 1)
    cfg = net.config()
    assert (cfg["cell"], cfg["rnn_layers"], cfg["hidden_size"]) == ("lstm", 2, 40)
    assert (cfg["residual_layers"], cfg["residual_channels"], cfg["dilation_cycle"]) == (8, 8, 2)
    assert isinstance(net.rnn, torch.nn.LSTM) and net.rnn.num_layers == 2 and net.rnn.hidden_size == 40
    assert [b.dilated_conv.dilation[0] for b in net.blocks] == [1, 2] * 4
    assert isinstance(build_model({"name": "timegrad", "cell": "gru"}, 8, 1).rnn, torch.nn.GRU)
    # the paper config: 100 steps of a linear schedule 1e-4 .. 0.1, paper network sizes
    cfg = load_config(CONFIG)
    assert cfg["process"] == {"name": "ddpm", "num_steps": 100, "schedule": "linear", "beta_start": 1e-4,
                              "beta_end": 0.1}
    net = build_model(cfg["model"], 8, 1)
    assert net.config()["hidden_size"] == 40 and net.config()["loss_on"] == "all"
    proc = build_process(cfg["process"].pop("name"), **cfg["process"])
    assert proc.betas[0].item() == pytest.approx(1e-4) and proc.betas[-1].item() == pytest.approx(0.1)
    assert len(proc.betas) == 100


@pytest.mark.parametrize("shape, lags", [((3, 10, 5, 2), [1, 3]), ((2, 4, 1, 1), [1]), ((1, 9, 7, 3), [2, 8])])
def test_output_shape_and_unmodelled_steps(shape, lags):
    B, L, N, C = shape
    net = _net(N, C, lags=lags)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g)
    cond = Condition(values=torch.randn(shape, generator=g), cond_mask=torch.rand(shape, generator=g) > 0.5,
                     timepoints=torch.arange(L).float().expand(B, L))
    with torch.no_grad():
        out = net(x, torch.arange(B).float() * 3, cond)
        per_step = net(x, (torch.arange(B * L).float() % 17).reshape(B, L), cond)
    t0 = max(lags)
    assert out.shape == shape and per_step.shape == shape
    assert torch.equal(out[:, :t0], torch.zeros(B, t0, N, C))  # steps before max(lags) are not generated
    assert (out[:, t0:].abs() > 0).all() and torch.isfinite(out).all()
    assert not torch.equal(out[:, t0:], per_step[:, t0:])  # per-step noise levels are used


def test_teacher_forcing_is_causal():
    """eps at step t is unchanged (bit for bit) by any value at steps >= t, and depends on step t - 1."""
    B, L, N, C = 2, 10, 5, 2
    net = _net(N, C)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(B, L, N, C, generator=g)
    values = torch.randn(B, L, N, C, generator=g)
    full = torch.ones(B, L, N, C, dtype=torch.bool)
    level = torch.tensor([4.0, 11.0])
    tp = torch.arange(L).float().expand(B, L)
    with torch.no_grad():
        ref = net(x, level, Condition(values, full, tp))
        for t in range(net.first_step, L):
            later = torch.arange(L)[None, :, None, None] >= t
            other_values = torch.where(later, torch.randn(values.shape, generator=g), values)
            other_mask = torch.where(later, torch.rand(full.shape, generator=g) > 0.5, full)
            other_x = torch.where(torch.arange(L)[None, :, None, None] != t, torch.randn(x.shape, generator=g), x)
            out = net(other_x, level, Condition(other_values, other_mask, tp))
            assert torch.equal(out[:, t], ref[:, t]), t
            if t + 1 < L:
                assert not torch.equal(out[:, t + 1], ref[:, t + 1])
        # the previous value (lag 1) and the noisy input of step t itself do matter
        changed = values.clone()
        changed[:, 5] += 1.0
        assert not torch.equal(net(x, level, Condition(changed, full, tp))[:, 6], ref[:, 6])
        x2 = x.clone()
        x2[:, 6] += 1.0
        assert not torch.equal(net(x2, level, Condition(values, full, tp))[:, 6], ref[:, 6])


def test_values_outside_cond_mask_are_never_read():
    B, L, N, C = 2, 10, 5, 2
    net = _net(N, C)
    x, cond_mask, tp = _window(B, L, N, C)
    cond_mask[0, 2, 1] = False  # a missing context value
    g = torch.Generator().manual_seed(3)
    a = Condition(torch.randn(x.shape, generator=g), cond_mask, tp)
    b = Condition(torch.where(cond_mask, a.values, torch.randn(x.shape, generator=g)), cond_mask, tp)
    with torch.no_grad():
        assert torch.equal(net(x, torch.tensor([3.0, 9.0]), a), net(x, torch.tensor([3.0, 9.0]), b))


@pytest.mark.parametrize("loss_on", ["target", "all"])
def test_autoregressive_loss_equals_teacher_forced_forward(loss_on):
    """The training loss is the masked eps loss of forward() with one diffusion step per time step."""
    B, L, N, C = 3, 10, 5, 2
    net = _net(N, C, loss_on=loss_on)
    proc = build_process(**{"name": "ddpm", **{k: v for k, v in PROCESS.items() if k != "name"}})
    x, cond_mask, tp = _window(B, L, N, C)
    observed = torch.ones_like(cond_mask)
    observed[1, 7, 2, 0] = False  # a missing horizon value is never a target
    observed[0, 4, 0, 1] = False  # nor a missing context value (with loss_on="all")
    x = torch.where(observed, x, torch.zeros_like(x))
    cond_mask &= observed
    with torch.no_grad():
        loss = net.autoregressive_loss(proc, Condition(x, cond_mask, tp), observed,
                                       generator=torch.Generator().manual_seed(5))
        g = torch.Generator().manual_seed(5)
        t0, T = net.first_step, L - net.first_step
        t = proc.sample_train_time(B * T, generator=g)
        noise = torch.randn((B * T, N, C), generator=g)
        x_t = proc.sample_noisy(x[:, t0:].reshape(B * T, N, C), t, noise)
        x_noisy = torch.cat([torch.zeros(B, t0, N, C), x_t.reshape(B, T, N, C)], dim=1)
        level = torch.cat([torch.zeros(B, t0), proc.network_time(t).reshape(B, T)], dim=1)
        eps = net(x_noisy, level, Condition(x, observed, tp))  # teacher forcing: all observed values
        target = observed & ~cond_mask if loss_on == "target" else observed.clone()
        target[:, :t0] = False
        noise_full = torch.cat([torch.zeros(B, t0, N, C), noise.reshape(B, T, N, C)], dim=1)
        expected = masked_eps_loss(eps, noise_full, target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    if loss_on == "target":
        assert target[:, :6].sum() == 0 and target.sum() == B * 4 * N * C - 1
    else:
        assert target[:, 3:6].sum() == B * 3 * N * C - 1


# --- sampling ---------------------------------------------------------------------------------

def _reference_sample(module, x, cond_mask, tp, n_samples, sampler, steps, seed):
    """Step-by-step reference: at each step, recompute the whole teacher-forced forward pass."""
    net, proc = module.net, module.process
    fn = build_sampler(sampler, steps=steps)
    gen = torch.Generator().manual_seed(seed)
    cond = Condition(x, cond_mask, tp).repeat(n_samples)
    M, L, N, C = cond.values.shape
    filled = torch.where(cond.cond_mask, cond.values, torch.zeros_like(cond.values))
    nfe = 0
    for t in range(net.first_step, L):
        if cond.cond_mask[:, t].all():
            continue
        known = (torch.arange(L) < t)[None, :, None, None].expand(M, L, N, C)
        past = Condition(filled.clone(), known, cond.timepoints)

        def denoise(x_t, s, t=t, past=past):
            x_full = torch.zeros(M, L, N, C)
            x_full[:, t] = x_t
            return net(x_full, proc.network_time(s), past)[:, t]

        x_T = proc.prior_sample((M, N, C), generator=gen)
        res = fn(denoise, x_T, proc, generator=gen)
        nfe += res.nfe
        filled[:, t] = torch.where(cond.cond_mask[:, t], cond.values[:, t], res.x0)
    return filled.reshape(n_samples, *x.shape), nfe


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "heun", "dpm_solver_pp"])
def test_autoregressive_sampling_equals_step_by_step_reference(sampler):
    B, L, N, C, S = 2, 10, 5, 2, 3
    module = _module(N, C, L)
    x, cond_mask, tp = _window(B, L, N, C)
    cond_mask[1, 4, 3, 0] = False  # a missing context value after max(lags): generated too
    cond_mask[0, 1, 2, 1] = False  # one before max(lags): left at 0
    samples, nfe = module.sample(x, cond_mask, tp, n_samples=S, sampler=sampler, steps=4,
                                 generator=torch.Generator().manual_seed(11))
    ref, ref_nfe = _reference_sample(module, x, cond_mask, tp, S, sampler, 4, 11)
    assert samples.shape == (S, B, L, N, C)
    assert nfe == ref_nfe and nfe == (L - 6 + 1) * {"heun": 7}.get(sampler, 4)  # 5 generated steps
    torch.testing.assert_close(samples, ref, rtol=1e-4, atol=1e-5)
    assert torch.equal(samples[:, cond_mask], x[cond_mask].expand(S, -1))  # conditioning values exactly
    assert torch.equal(samples[:, 0, 1, 2, 1], torch.zeros(S))
    assert torch.isfinite(samples).all() and not torch.equal(samples[0], samples[1])


def test_batched_sampling_keeps_paths_independent():
    """All paths go through one batched call per generated step, and each path's RNN state is its
    own: with a deterministic draw, sampling both windows together equals sampling each alone."""
    B, L, N, C = 2, 10, 5, 2
    module = _module(N, C, L)
    x, cond_mask, tp = _window(B, L, N, C)
    calls = []

    def draw(denoise, observed, mask):  # a deterministic 'sampler': one eps evaluation from a fixed start
        calls.append(tuple(observed.shape))
        start = torch.ones(observed.shape)
        return start - denoise(start, torch.full((observed.shape[0],), 5.0)), 1

    with torch.no_grad():
        whole, nfe = module.net.sample_autoregressive(Condition(x, cond_mask, tp), draw)
        parts = [module.net.sample_autoregressive(Condition(x[i:i + 1], cond_mask[i:i + 1], tp[i:i + 1]), draw)[0]
                 for i in range(B)]
    assert nfe == 4 and calls[:4] == [(B, N, C)] * 4  # one batched pass per horizon step
    torch.testing.assert_close(whole, torch.cat(parts), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("conditioning, options", [("inpainting", {}), ("inpainting", {"resample": 2}),
                                                    ("guidance", {"scale": 1.0})])
def test_conditioning_strategies_within_partly_observed_steps(conditioning, options):
    """Strategies act inside each generated step; observed entries of a horizon step come back exactly."""
    B, L, N, C, S = 2, 10, 5, 2, 2
    module = _module(N, C, L)
    x, cond_mask, tp = _window(B, L, N, C)
    cond_mask[:, 7, :2] = True  # two series observed at horizon step 7
    kw = dict(n_samples=S, sampler="ddim", steps=3)
    base, nfe0 = module.sample(x, cond_mask, tp, generator=torch.Generator().manual_seed(0), **kw)
    got, nfe = module.sample(x, cond_mask, tp, generator=torch.Generator().manual_seed(0), conditioning=conditioning,
                             conditioning_options=options, **kw)
    assert nfe0 == 4 * 3 and nfe == 4 * 3 * options.get("resample", 1)  # RePaint: r evaluations per visited time
    assert torch.equal(got[:, cond_mask], x[cond_mask].expand(S, -1)) and torch.isfinite(got).all()
    assert not torch.allclose(got[:, :, 7, 2:], base[:, :, 7, 2:])  # the strategy changed the step


def test_save_load_identical_samples(tmp_path):
    module = _module()
    x, cond_mask, tp = _window()
    loaded, _ = load_model(save_model(module, tmp_path / "model.pt"))
    kw = dict(n_samples=4, sampler="ddpm", steps=5)
    a, _ = module.sample(x, cond_mask, tp, generator=torch.Generator().manual_seed(3), **kw)
    b, _ = loaded.sample(x, cond_mask, tp, generator=torch.Generator().manual_seed(3), **kw)
    c, _ = loaded.sample(x, cond_mask, tp, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert loaded.net.config() == module.net.config()


def test_hundreds_of_series():
    """Electricity-sized N = 370 with the paper's network: training step and a short sampling run."""
    N, C, L, context = 370, 1, 12, 8
    model = {"name": "timegrad", "lags": [1, 2, 7]}  # paper sizes otherwise
    module = _module(N, C, L, context, model=model)
    module.train()
    x, cond_mask, tp = _window(4, L, N, C, context)
    batch = {"x": x, "observed_mask": torch.ones_like(cond_mask), "cond_mask": cond_mask, "timepoints": tp}
    loss = module.diffusion_loss(batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in module.net.parameters()]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert module.net.rnn.input_size == N * 3 + 8
    samples, nfe = module.sample(x[:2], cond_mask[:2], tp[:2], n_samples=3, sampler="ddim", steps=2,
                                 generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 2, L, N, C) and nfe == 2 * (L - context)
    assert torch.equal(samples[:, cond_mask[:2]], x[:2][cond_mask[:2]].expand(3, -1))
    assert torch.isfinite(samples).all()


# --- real data --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exchange(data_dir):
    from tsdiff.data import build_protocol

    return build_protocol("exchange_rate", data_dir, {"context": 30, "prediction_length": 30})


def test_loss_decreases_on_exchange_rate(exchange):
    model = {"name": "timegrad", "lags": [1, 2, 5, 10], "hidden_size": 40, "loss_on": "target"}
    torch.manual_seed(0)
    module = DiffusionModule(model=model, process={**PROCESS, "num_steps": 100}, optim=OPTIM, train_mask="mix",
                             signature=exchange.signature, scaler=exchange.scaler.state_dict(), config={"seed": 0})
    train = exchange.dataset("train")
    probe = next(iter(DataLoader(Subset(train, list(range(0, len(train), 150))), batch_size=64)))

    def probe_loss():
        module.eval()
        with torch.no_grad():
            return module.diffusion_loss(probe, generator=torch.Generator().manual_seed(123)).item()

    before = probe_loss()
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    loader = DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    module.train()
    gen = torch.Generator().manual_seed(1)
    for step, batch in enumerate(loader):
        loss = module.diffusion_loss(batch, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 24:
            break
    after = probe_loss()
    assert 0.9 < before < 1.1  # zero-initialised output layer: E[eps^2] = 1
    assert after < 0.75 * before, (before, after)


def test_cli_fit_and_test_on_exchange_rate(tmp_path, data_dir):
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}"]
    tiny = ["trainer.max_steps=3", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
            "data.batch_size=16", "eval.n_samples=3", "eval.sampler=ddim", "eval.steps=4"]
    assert main(["fit", CONFIG, *tiny, *out, "--test"]) == 0
    (record,) = (tmp_path / "records").glob("*.json")
    rec = json.loads(record.read_text())
    assert rec["model"] == "timegrad" and rec["task"] == "exchange_rate_forecasting"
    assert rec["nfe"] == 4 * 30  # 4 sampler steps per horizon step
    assert rec["metrics"]["n_targets"] == 5 * 30 * 8
    assert 0 < rec["metrics"]["crps"] < 1 and 0 < rec["metrics"]["crps_sum"] < 1
    assert rec["config"]["model"]["lags"] == [1, 2, 3, 4, 5, 10, 20]


# --- bad input --------------------------------------------------------------------------------

def test_bad_input_is_a_clear_error():
    scaler = {"kind": "standard", "mean": [[0.0]] * 4, "std": [[1.0]] * 4}

    def module(sig, model=TINY):
        return DiffusionModule(model=model, process=PROCESS, optim=OPTIM, train_mask="mix", signature=sig,
                               scaler=scaler)

    with pytest.raises(ConfigError, match="supports forecasting protocols; 'synthetic' is a protocol for imputation"):
        module(_signature(4, 1, 36, None, task="imputation"))
    with pytest.raises(ConfigError, match=r"context of at least max\(model.lags\) = 3 steps, the data has 2"):
        module(_signature(4, 1, 10, 2))
    module(_signature(4, 1, 10, 3))  # a context of exactly max(lags) is enough
    for bad, fragment in [({"cell": "rnn"}, "cell must be one of"), ({"lags": []}, "non-empty list"),
                          ({"lags": [0, 1]}, "lags entry must be an integer >= 1"), ({"lags": [1, 1]}, "repeated"),
                          ({"loss_on": "horizon"}, "loss_on must be one of"), ({"dropout": 1.0}, "dropout"),
                          ({"time_feature_dim": 3}, "must be even"), ({"hidden_size": 0}, "hidden_size"),
                          ({"window": 3}, "unknown option")]:
        with pytest.raises(ConfigError, match=fragment):
            build_model({**TINY, **bad}, 4, 1)
    net = _net(5, 2)
    x, cond_mask, tp = _window(2, 10, 5, 2)
    with pytest.raises(DataError, match=r"\(N, C\) = \(5, 2\)"):  # feature count differs from the model's
        net(x[..., :1], torch.zeros(2), Condition(x[..., :1], cond_mask[..., :1], tp))
    with pytest.raises(DataError, match="needs windows longer than max"):
        net(x[:, :3], torch.zeros(2), Condition(x[:, :3], cond_mask[:, :3], tp[:, :3]))
    with pytest.raises(DataError, match="noise_level must have shape"):
        net(x, torch.zeros(3), Condition(x, cond_mask, tp))
    proc = build_process(**{"name": "ddpm", **{k: v for k, v in PROCESS.items() if k != "name"}})
    early = torch.zeros_like(cond_mask)
    early[:, :2] = True  # context of 2 < max(lags) = 3: targets at step 2
    with pytest.raises(DataError, match="cannot model the first max"):
        net.autoregressive_loss(proc, Condition(x, early, tp), torch.ones_like(early))


def test_imputation_protocol_is_refused(aqi36):
    with pytest.raises(ConfigError, match="'aqi36-csdi' is a protocol for imputation. Use a forecasting dataset"):
        DiffusionModule(model=TINY, process=PROCESS, optim=OPTIM, train_mask="mix", signature=aqi36.signature,
                        scaler=aqi36.scaler.state_dict())


def test_config_file_is_plain_yaml_with_documented_overrides():
    text = open(CONFIG).read()
    cfg = yaml.safe_load(text)
    assert cfg["model"]["name"] == "timegrad" and cfg["data"]["options"]["context"] >= max(cfg["model"]["lags"])
    assert "trainer.max_steps=" in text  # the short CPU run is documented in the file
