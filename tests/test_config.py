import pytest

from tsdiff.config import DEFAULTS, load_config, parse_override
from tsdiff.errors import ConfigError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrainer:\n  max_epochs: 3\nmodel:\n  name: csdi\n  channels: 32\n")
    cfg = load_config(path, ["trainer.max_epochs=5", "eval.steps=10", "data.options.window=24"])
    assert cfg["trainer"]["max_epochs"] == 5
    assert cfg["eval"]["steps"] == 10
    assert cfg["model"] == {"name": "csdi", "channels": 32}
    assert cfg["data"]["options"] == {"window": 24}
    assert cfg["process"] == DEFAULTS["process"]  # untouched sections keep defaults
    assert DEFAULTS["trainer"]["max_epochs"] == 200  # defaults are never mutated


def test_override_values_are_yaml():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("x=null") == (["x"], None)
    assert parse_override("x=1e-3") == (["x"], 1e-3)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("trainer.max_epoch=3", r"unknown config key 'trainer.max_epoch' \(did you mean 'max_epochs'\?\)"),
        ("bogus=1", "unknown config key 'bogus'"),
        ("trainer=3", "must be a mapping"),
        ("novalue", "not of the form key=value"),
        ("eval.n_samples=0", "eval.n_samples must be an integer >= 1"),
        ("eval.steps=-2", "eval.steps must be null"),
        ("optim.lr=-1", "optim.lr must be a positive number"),
        ("data.batch_size=abc", "data.batch_size must be an integer"),
        ("optim.milestones=[1.5]", "fractions of training"),
    ],
)
def test_bad_config_is_a_clear_error(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_config(lst)


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].joinpath("configs").rglob("*.yaml"))
    assert configs, "no configs found"
    for path in configs:
        cfg = load_config(path)
        assert cfg["model"]["name"]


def test_unknown_process_option_lists_valid_ones():
    from tsdiff.diffusion import build_process

    with pytest.raises(ConfigError, match="unknown option.*'num_step'.*for process 'ddpm'; valid options are: num_steps, schedule"):
        build_process("ddpm", num_step=10)


def test_a_new_process_name_starts_from_that_process_defaults(tmp_path):
    # The defaults (and a shipped config) configure DDPM; naming another process must not
    # carry DDPM's options into it, and options of the same process still merge.
    from tsdiff.diffusion import build_process

    path = tmp_path / "vp.yaml"
    path.write_text("process:\n  name: vp\n  beta_max: 15.0\n")
    cfg = load_config(path)
    assert cfg["process"] == {"name": "vp", "beta_max": 15.0}
    proc = dict(cfg["process"])
    assert build_process(proc.pop("name"), **proc).name == "vp"
    assert load_config(None, ["process.name=ve"])["process"] == {"name": "ve"}
    assert load_config(path, ["process.beta_min=0.2"])["process"] == {"name": "vp", "beta_max": 15.0, "beta_min": 0.2}
    assert load_config(None, ["process.num_steps=100"])["process"] == {**DEFAULTS["process"], "num_steps": 100}
    assert load_config(None, ["process.name=ddpm"])["process"] == DEFAULTS["process"]  # same name: options kept
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['num_step'\] for process 'ddpm'"):
        proc = dict(load_config(None, ["process.num_step=10"])["process"])
        build_process(proc.pop("name"), **proc)
