"""``--method {auto,exact,mc}`` of ``unicr certify`` (also under torchrun), ``iopt`` and ``copt``:
the engine reaches every radius the command computes, is recorded with the output (a resume with
another one is refused), and a method that cannot apply (exact with radial noise) is a usage
error. The radius engine is replaced by a recorder (``engine``): these tests are about the
plumbing, and each runs in a few seconds on two cores (a tiny untrained MLP, four digits)."""
import json
import socket

import numpy as np
import pytest
import torch

from unicr_fast import cli
from unicr_fast.radius import cache as radius_cache, table as radius_table
from unicr_fast import optimize as opt
from unicr_fast.datasets import digits
from unicr_fast.demo import MLP_KWARGS
from unicr_fast.models import build_model, save_checkpoint
from unicr_fast.radius.table import RadiusTable

RADIAL = ["--noise", "radial", "--param", "q=2", "--param", "beta=1", "--sigma", "0.25"]
LAPLACE = ["--noise", "laplace", "--sigma", "0.25"]


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``unicr argv`` run in this process."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors, --help
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def confident_mlp(**kwargs):
    """An untrained MLP that answers class 0 whatever the input: every input is certified, so
    every certificate asks the radius engine."""
    torch.manual_seed(0)
    model = build_model("mlp", **kwargs)
    with torch.no_grad():
        model.net[-1].bias[0] = 100.0
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("method")
    x, y = digits("test")
    torch.save({"x": x[:4].clone(), "y": y[:4].clone()}, root / "four.pt")
    kwargs = {"in_features": 64, "hidden": [8], "num_classes": 10}
    save_checkpoint(root / "mlp.pt", confident_mlp(**kwargs), "mlp", kwargs, 10, [1, 8, 8])
    return {"data": str(root / "four.pt"), "model": str(root / "mlp.pt")}


@pytest.fixture
def engine(monkeypatch):
    """Replaces certified_radius behind RadiusCache (Smooth, I-OPT, C-OPT) and RadiusTable by a
    recorder of the method (and sound mode) each call asks for; every radius is 0.25."""
    calls = []

    def fake(noise, p_a, p_b=None, norm=2, dim=None, num_samples=100_000, seed=0,
             device="auto", **kw):
        calls.append({"noise": noise.name, "method": kw.get("method", "auto"),
                      "sound": kw.get("sound", False)})
        return np.full(np.shape(p_a), 0.25)
    monkeypatch.setattr(radius_cache, "certified_radius", fake)
    monkeypatch.setattr(radius_table, "certified_radius", fake)
    return calls


def certify_args(tiny, out, noise=LAPLACE, *extra):
    return ["certify", "--data", tiny["data"], "--model", tiny["model"], *noise, "--norm", "1",
            "--out", out, "--n0", "10", "--n", "50", "--batch", "50", "--radius-samples", "200",
            "--device", "cpu", "--no-progress", *extra]


def recorded(out):
    with open(str(out) + cli.PARAMS_SUFFIX) as f:
        return json.load(f)["method"]


def methods(calls):
    return {c["method"] for c in calls}


# -- certify -------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise, method, engine_method", [
    (LAPLACE, "auto", "exact"), (LAPLACE, "exact", "exact"), (LAPLACE, "mc", "mc"),
    (RADIAL, "auto", "mc"), (RADIAL, "mc", "mc"),
], ids=["laplace-auto", "laplace-exact", "laplace-mc", "radial-auto", "radial-mc"])
def test_certify_passes_the_method_to_the_engine(tiny, tmp_path, capsys, engine, noise, method,
                                                 engine_method):
    out = tmp_path / "res.tsv"
    code, _, err = run_cli(certify_args(tiny, out, noise, "--method", method), capsys)
    assert code == 0, err
    assert engine and methods(engine) == {engine_method}
    assert all(c["sound"] for c in engine) == (engine_method == "mc")   # MC radii: sound mode
    assert recorded(out) == engine_method
    assert [line.split("\t")[3] for line in out.read_text().splitlines()[1:]] == ["0.25"] * 4


def test_certify_resume_with_another_method_is_refused(tiny, tmp_path, capsys, engine):
    out = tmp_path / "res.tsv"
    assert run_cli(certify_args(tiny, out, LAPLACE, "--method", "mc", "--max", "2"), capsys)[0] == 0
    code, _, err = run_cli(certify_args(tiny, out, LAPLACE, "--method", "exact"), capsys)
    assert code == 2 and "other settings" in err and "method: 'mc' there, 'exact' now" in err
    assert len(out.read_text().splitlines()) == 3                    # header + the 2 rows
    code, _, err = run_cli(certify_args(tiny, out, LAPLACE, "--method", "mc"), capsys)
    assert code == 0 and "resumed after 2 rows" in err
    # auto means the engine it resolves to: exact for Laplace, so auto resumes an exact output
    out2 = tmp_path / "exact.tsv"
    assert run_cli(certify_args(tiny, out2, LAPLACE, "--method", "exact", "--max", "2"),
                   capsys)[0] == 0
    code, _, err = run_cli(certify_args(tiny, out2, LAPLACE, "--method", "auto"), capsys)
    assert code == 0 and "resumed after 2 rows" in err


def test_certify_refuses_an_output_recorded_without_a_method(tiny, tmp_path, capsys, engine):
    """An output begun before --method existed does not say which engine its radii came from
    (the default changed from Monte Carlo to exact): the missing key is a mismatch, as missing
    keys are for every recorded setting."""
    out = tmp_path / "old.tsv"
    assert run_cli(certify_args(tiny, out, LAPLACE, "--max", "2"), capsys)[0] == 0
    params = tmp_path / ("old.tsv" + cli.PARAMS_SUFFIX)
    record = json.loads(params.read_text())
    del record["method"]
    params.write_text(json.dumps(record))
    code, _, err = run_cli(certify_args(tiny, out, LAPLACE), capsys)
    assert code == 2 and "method: not recorded (an older output) there, 'exact' now" in err


def test_certify_radius_table_of_another_engine(tiny, tmp_path, capsys, engine):
    table, out = tmp_path / "t.npz", tmp_path / "res.tsv"
    code, _, err = run_cli(certify_args(tiny, out, LAPLACE, "--method", "mc", "--radius-table",
                                        table, "--max", "1"), capsys)
    assert code == 0, err
    assert RadiusTable.load(table).engine["method"] == "mc" and recorded(out) == "mc"
    assert methods(engine) == {"mc"}                   # the table was built with the method
    code, _, err = run_cli(certify_args(tiny, tmp_path / "r2.tsv", LAPLACE, "--method", "exact",
                                        "--radius-table", table), capsys)
    assert code == 2 and "--radius-table" in err and "--method is exact" in err
    code, _, err = run_cli(certify_args(tiny, tmp_path / "r3.tsv", LAPLACE, "--radius-table",
                                        table), capsys)
    assert code == 0, err                              # auto takes the table's engine
    assert recorded(tmp_path / "r3.tsv") == "mc"


# -- usage errors --------------------------------------------------------------------------------
def iopt_args(tiny, out, noise=LAPLACE, *extra):
    return ["iopt", "--data", tiny["data"], "--model", tiny["model"], *noise, "--norm", "1",
            "--out", out, "--n0", "10", "--n", "50", "--n-select", "20", "--max-steps", "1",
            "--batch", "50", "--radius-samples", "200", "--device", "cpu", "--no-progress",
            *extra]


def copt_args(out, *extra):
    return ["copt", "--out", out, "--family", "laplace", "--sigmas", "0.25", "--points", "3",
            "--epochs", "1", "--n0", "10", "--n", "50", "--batch", "50", "--radius-samples",
            "200", "--device", "cpu", "--no-progress", *extra]


@pytest.mark.parametrize("command", ["certify", "iopt", "copt"])
def test_exact_with_radial_noise_is_a_usage_error(tiny, tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = {"certify": lambda: certify_args(tiny, out, RADIAL, "--method", "exact"),
            "iopt": lambda: iopt_args(tiny, out, RADIAL, "--method", "exact"),
            "copt": lambda: copt_args(out, "--family", "radial", "--param", "q=2",
                                      "--param", "beta=1", "--method", "exact")}[command]()
    code, _, err = run_cli(argv, capsys)
    assert code == 2, err
    assert f"unicr {command}: error: --method exact does not apply to noise 'radial'" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("command", ["certify", "iopt", "copt"])
def test_help_says_what_auto_means(capsys, command):
    code, text, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    flat = " ".join(text.split())
    assert "--method {auto,exact,mc}" in flat
    assert "auto: exact for product noise, mc for radial noise" in flat
    assert "(default: auto)" in flat


def test_unknown_method_is_refused_by_the_parser(tiny, tmp_path, capsys):
    code, _, err = run_cli(certify_args(tiny, tmp_path / "r.tsv", LAPLACE, "--method", "fast"),
                           capsys)
    assert code == 2 and "--method" in err and "invalid choice" in err


# -- iopt ----------------------------------------------------------------------------------------
def test_iopt_passes_the_method_and_refuses_another_on_resume(tiny, tmp_path, capsys, engine):
    out = tmp_path / "iopt.tsv"
    code, _, err = run_cli(iopt_args(tiny, out, LAPLACE, "--method", "mc", "--max", "2"), capsys)
    assert code == 0, err
    assert engine and methods(engine) == {"mc"} and all(c["sound"] for c in engine)
    assert recorded(out) == "mc"
    engine.clear()
    code, _, err = run_cli(iopt_args(tiny, out, LAPLACE, "--method", "exact"), capsys)
    assert code == 2 and "method: 'mc' there, 'exact' now" in err and not engine
    code, _, err = run_cli(iopt_args(tiny, tmp_path / "auto.tsv", LAPLACE, "--max", "1"), capsys)
    assert code == 0 and methods(engine) == {"exact"}


# -- copt ----------------------------------------------------------------------------------------
def test_copt_passes_the_method_and_refuses_another_on_resume(tmp_path, capsys, engine,
                                                               monkeypatch):
    model = confident_mlp(**MLP_KWARGS)
    monkeypatch.setattr(opt, "digits_train_fn", lambda *a, **k: (lambda noise: model))
    out = tmp_path / "copt"
    code, _, err = run_cli(copt_args(out, "--method", "mc"), capsys)
    assert code == 0, err
    assert engine and methods(engine) == {"mc"} and all(c["sound"] for c in engine)
    params = json.loads((out / ("copt.tsv" + cli.PARAMS_SUFFIX)).read_text())
    assert params["radius_kwargs"] == {"method": repr("mc")}
    code, _, err = run_cli(copt_args(out, "--method", "mc"), capsys)
    assert code == 0 and "resumed: 1 of 1" in err
    code, _, err = run_cli(copt_args(out), capsys)
    assert code == 2 and "other settings" in err and "method" in err
    engine.clear()
    code, _, err = run_cli(copt_args(tmp_path / "auto"), capsys)
    assert code == 0 and methods(engine) == {"exact"}


# -- torchrun path -------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_rank(monkeypatch):
    """``unicr certify`` takes the torchrun path (certify_distributed) in a group of one."""
    import unicr_fast.distributed as D
    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0",
                           WORLD_SIZE="1", LOCAL_RANK="0").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(D, "launched_distributed", lambda environ=None: True)
    return D


def test_torchrun_certify_passes_the_method_and_refuses_another(tiny, tmp_path, capsys, engine,
                                                                one_rank):
    out = tmp_path / "dist.tsv"
    code, _, err = run_cli(certify_args(tiny, out, LAPLACE, "--method", "mc", "--max", "2"),
                           capsys)
    assert code == 0 and "merged 2 rows from 1 shards" in err, err
    assert engine and methods(engine) == {"mc"} and all(c["sound"] for c in engine)
    shard = one_rank.shard_path(out, 0)
    assert recorded(out) == "mc" and recorded(shard) == "mc"
    code, _, err = run_cli(certify_args(tiny, out, LAPLACE, "--method", "exact"), capsys)
    assert code == 2 and "method: 'mc' there, 'exact' now" in err
    code, _, err = run_cli(certify_args(tiny, out, RADIAL, "--method", "exact"), capsys)
    assert code == 2 and "--method exact does not apply to noise 'radial'" in err
    # the library entry point refuses it too, before the rendezvous
    with pytest.raises(cli.UsageError, match="--method exact does not apply"):
        one_rank.certify_distributed(tiny["data"], tiny["model"],
                                     cli.make_noise("radial", 0.25, [("q", 2.0), ("beta", 1.0)]),
                                     1, tmp_path / "lib.tsv", n0=10, n=50, batch=50,
                                     device="cpu", progress=False, method="exact")


def test_copt_radial_noise_with_its_own_beta(tmp_path, capsys, engine, monkeypatch):
    """`--param beta=1` of radial noise reaches the noise (it once collided with the grid's
    own beta keyword: "multiple values for argument 'beta'")."""
    model = confident_mlp(**MLP_KWARGS)
    monkeypatch.setattr(opt, "digits_train_fn", lambda *a, **k: (lambda noise: model))
    out = tmp_path / "copt"
    code, _, err = run_cli(copt_args(out, "--family", "radial", "--param", "q=2",
                                     "--param", "beta=1"), capsys)
    assert code == 0, err
    assert engine and methods(engine) == {"mc"}
