"""The ``unicr`` command line: radius, certify (incl. resume), curve, validate, demo; and the
data / checkpoint helpers behind it. Runs in well under three minutes on two cores: Gaussian
noise (closed-form radius) wherever the radius engine is not the point of the test."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import unicr_fast as uc
from unicr_fast import cli, curve
from unicr_fast.datasets import digits, load_dataset
from unicr_fast.models import build_model, load_checkpoint, save_checkpoint
from unicr_fast.radius.closed_forms import gaussian_radius

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime"


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``unicr argv`` run in this process."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def data_rows(path):
    """Data lines of a certify TSV as lists of fields (complete lines only)."""
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")
    assert lines[0] == HEADER
    return [line.split("\t") for line in lines[1:-1]]


def without_time(rows):
    return [r[:5] for r in rows]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Six held-out digits (.pt and .npz), 30 for the kill test, and an MLP trained for a few
    epochs with Gaussian noise (sigma 0.25): a model that gets most points right."""
    from unicr_fast.demo import MLP_KWARGS, train_mlp
    root = tmp_path_factory.mktemp("cli")
    x, y = digits("test")
    torch.save({"x": x[:6].clone(), "y": y[:6].clone()}, root / "six.pt")
    np.savez(root / "six.npz", x=x[:6].numpy(), y=y[:6].numpy())
    torch.save({"x": x[:30].clone(), "y": y[:30].clone()}, root / "thirty.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x_tr, y_tr = digits("train")
        model = train_mlp(uc.noise.make("gaussian", sigma=0.25), x_tr, y_tr, epochs=4)
    finally:
        torch.set_num_threads(threads)
    save_checkpoint(root / "mlp.pt", model, "mlp", MLP_KWARGS, 10, [1, 8, 8])
    return {"root": root, "pt": str(root / "six.pt"), "npz": str(root / "six.npz"),
            "thirty": str(root / "thirty.pt"), "model": str(root / "mlp.pt"), "x": x[:20],
            "y": y[:20]}


def certify_args(small, out, *extra, data=None, n=200, device="cpu"):
    return ["certify", "--data", data or small["pt"], "--model", small["model"], "--noise",
            "gaussian", "--sigma", "0.25", "--norm", "2", "--out", out, "--n0", "20", "--n", n,
            "--batch", "100", "--device", device, "--no-progress", *extra]


# -- radius ------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, noise, kwargs", [
    (["--noise", "laplace", "--sigma", "0.5", "--norm", "1", "--p-a", "0.9"],
     ("laplace", {"sigma": 0.5}), dict(p_a=0.9, p_b=None, norm=1)),
    (["--noise", "general-normal", "--param", "beta=1.5", "--sigma", "0.3", "--norm", "inf",
      "--p-a", "0.8", "--p-b", "0.1", "--seed", "3"],
     ("general_normal", {"sigma": 0.3, "beta": 1.5}), dict(p_a=0.8, p_b=0.1, norm=math.inf, seed=3)),
], ids=["laplace-l1-binary", "general_normal-linf-multiclass"])
def test_radius_matches_certified_radius(capsys, argv, noise, kwargs):
    code, out, err = run_cli(["radius", *argv, "--dim", "10", "--samples", "4000"], capsys)
    assert code == 0, err
    expected = uc.certified_radius(uc.noise.make(noise[0], **noise[1]), dim=10, num_samples=4000,
                                   **kwargs)
    assert float(out.strip()) == expected  # same seed, same device: bit-identical (DESIGN)


def test_radius_several_p_a_one_line_each(capsys):
    code, out, _ = run_cli(["radius", "--noise", "gaussian", "--sigma", "1", "--norm", "2",
                            "--p-a", "0.6", "0.9", "0.4", "--dim", "4", "--samples", "2000"], capsys)
    assert code == 0
    vals = [float(v) for v in out.split()]
    expected = uc.certified_radius(uc.noise.make("gaussian", sigma=1.0), np.array([0.6, 0.9, 0.4]),
                                   None, 2, 4, 2000)
    assert vals == list(expected)
    assert vals[2] == 0.0  # p_a <= 1/2 certifies nothing


# -- curve -------------------------------------------------------------------------------------
CURVE_TSV = HEADER + "\n" + "\n".join([
    "0\t1\t1\t0.5\t1\t0:00:01",
    "1\t2\t2\t1.5\t1\t0:00:02",
    "2\t3\t-1\t0\t0\t0:00:01",
    "3\t4\t5\t0.8\t0\t0:00:01",       # wrong prediction: its radius counts for nothing
    "4\t0\t0\t1\t1\t0:00:00.500000",
]) + "\n"


def test_curve_numbers_exact(tmp_path, capsys):
    tsv = tmp_path / "hand.tsv"
    tsv.write_text(CURVE_TSV + "5\t1\t1\t9.9")  # an unfinished last line is ignored
    radii = [0, 0.5, 1.0, 1.5, 2.0]
    # correct rows have radii 0.5, 1.5, 1.0 out of 5 rows
    assert curve.certified_accuracy(tsv, radii).tolist() == [0.6, 0.6, 0.4, 0.2, 0.0]
    assert curve.robustness_score(tsv) == pytest.approx((0.5 + 1.5 + 1.0) / 5, abs=1e-15)

    png, table = tmp_path / "c.png", tmp_path / "t.tsv"
    code, out, err = run_cli(["curve", tsv, "--radii", *radii, "--out", png, "--table", table],
                             capsys)
    assert code == 0, err
    head, row = table.read_text().splitlines()
    assert head.split("\t") == ["file", "n", "abstain", "0", "0.5", "1", "1.5", "2", "score",
                                "seconds"]
    assert row.split("\t") == ["hand", "5", "1", "0.6", "0.6", "0.4", "0.2", "0", "0.6", "5.500"]
    assert "60.0%" in out and "0.6000" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curve_default_radii_and_several_files(tmp_path, capsys):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text(CURVE_TSV)
    b.write_text(HEADER + "\n0\t1\t1\t0.25\t1\t0:00:01\n1\t1\t0\t0.3\t0\t0:00:01\n")
    assert curve.default_radii(1.5).tolist() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4]
    code, out, err = run_cli(["curve", a, b, "--labels", "first", "second"], capsys)
    assert code == 0, err
    assert (tmp_path / "a.curve.png").exists()
    lines = out.splitlines()
    assert lines[1].split()[0] == "first" and lines[2].split()[0] == "second"
    assert lines[2].split()[3] == "50.0%"  # b at r = 0: one of two rows correct


# -- certify -----------------------------------------------------------------------------------
def test_certify_writes_cohen_columns(small, tmp_path, capsys):
    out = tmp_path / "res.tsv"
    code, _, err = run_cli(certify_args(small, out), capsys)
    assert code == 0, err
    rows = data_rows(out)
    assert [int(r[0]) for r in rows] == list(range(6))
    assert [int(r[1]) for r in rows] == small["y"][:6].tolist()
    for idx, label, pred, radius, correct, spent in rows:
        assert int(correct) == int(int(pred) == int(label))
        assert float(radius) >= 0 and (int(pred) != -1 or float(radius) == 0)
        assert curve.parse_time(spent) >= 0
    assert sum(int(r[4]) for r in rows) >= 4  # the trained MLP gets most of them right
    # Each row is Smooth.certify with the input's own seed (independent of earlier rows).
    model, _ = load_checkpoint(small["model"])
    smooth = uc.Smooth(model, 10, sigma=0.25, norm=2)
    for i in (0, 5):
        smooth.seed = cli.point_seed(0, i)
        pred, radius = smooth.certify(small["x"][i], 20, 200, 0.001, 100)
        assert [int(rows[i][2]), float(rows[i][3])] == [pred, pytest.approx(radius, rel=1e-5)]
    best = gaussian_radius(0.25, 0.001 ** (1 / 200), None, 2, 64)  # all 200 draws right
    assert max(float(r[3]) for r in rows) <= best * (1 + 1e-5)


def test_certify_npz_skip_and_laplace_l1(small, tmp_path, capsys):
    out = tmp_path / "lap.tsv"
    argv = ["certify", "--data", small["npz"], "--model", small["model"], "--noise", "laplace",
            "--sigma", "0.25", "--norm", "1", "--out", out, "--n0", "20", "--n", "200",
            "--batch", "200", "--skip", "2", "--radius-samples", "2000", "--no-progress"]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    rows = data_rows(out)
    assert [int(r[0]) for r in rows] == [0, 2, 4]
    assert any(float(r[3]) > 0 for r in rows)


def test_resume_after_max_gives_the_uninterrupted_rows(small, tmp_path, capsys):
    full, part = tmp_path / "full.tsv", tmp_path / "part.tsv"
    assert run_cli(certify_args(small, full), capsys)[0] == 0
    assert run_cli(certify_args(small, part, "--max", "3"), capsys)[0] == 0
    first = part.read_text()
    assert [r[0] for r in data_rows(part)] == ["0", "1", "2"]
    code, _, err = run_cli(certify_args(small, part), capsys)
    assert code == 0 and "resumed after 3 rows" in err
    assert part.read_text().startswith(first)  # rows already written are kept byte for byte
    assert without_time(data_rows(part)) == without_time(data_rows(full))
    code, _, err = run_cli(certify_args(small, part), capsys)  # nothing left to do
    assert code == 0 and "already certified" in err
    assert len(data_rows(part)) == 6


@pytest.mark.parametrize("cut", ["mid_row", "mid_header", "only_newline_missing"])
def test_resume_ignores_a_truncated_last_line(small, tmp_path, capsys, cut):
    out = tmp_path / "res.tsv"
    assert run_cli(certify_args(small, out), capsys)[0] == 0
    full = out.read_text()
    if cut == "mid_row":
        text = full[:-7]
    elif cut == "mid_header":
        text = HEADER[:9]
    else:
        text = full[:-1]  # the last row lacks only its newline: still unfinished
    out.write_text(text)
    code, _, err = run_cli(certify_args(small, out), capsys)
    assert code == 0, err
    assert without_time(data_rows(out)) == without_time(
        [line.split("\t") for line in full.split("\n")[1:-1]])


def test_kill_mid_run_then_resume_loses_and_duplicates_nothing(small, tmp_path, capsys):
    out = tmp_path / "killed.tsv"
    argv = certify_args(small, out, data=small["thirty"], n=20_000)
    argv[argv.index("--batch") + 1] = "2000"
    proc = subprocess.Popen([sys.executable, "-m", "unicr_fast", *map(str, argv)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 3:  # header + 2 rows
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"certify ended early: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    written = len(data_rows(out))
    assert 2 <= written < 30
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    idx = [int(r[0]) for r in data_rows(out)]
    assert idx == list(range(30))  # none lost, none duplicated, in order


def test_resume_refuses_other_settings(small, tmp_path, capsys):
    out = tmp_path / "res.tsv"
    assert run_cli(certify_args(small, out, "--max", "2"), capsys)[0] == 0
    argv = certify_args(small, out)
    argv[argv.index("--sigma") + 1] = "0.5"
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert "other settings" in err and "sigma" in err and "choose another --out" in err
    assert len(data_rows(out)) == 2


# -- bad arguments -----------------------------------------------------------------------------
RADIUS = ["radius", "--noise", "laplace", "--sigma", "0.5", "--norm", "1", "--p-a", "0.9",
          "--dim", "4"]


def _replace(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


@pytest.mark.parametrize("argv, message", [
    ([], "required: COMMAND"),
    (_replace(RADIUS, "--norm", "0"), "norm must be > 0"),
    (_replace(RADIUS, "--norm", "two"), "examples: 1, 2, 1.5, inf"),
    (_replace(RADIUS, "--p-a", "1.5"), "1.5 is outside (0, 1]"),
    (_replace(RADIUS, "--sigma", "-1"), "outside (0, inf)"),
    (_replace(RADIUS, "--dim", "0"), "expected an integer >= 1"),
    (_replace(RADIUS, "--noise", "gauss"), "unknown noise family 'gauss'; choose one of"),
    (RADIUS + ["--param", "beta"], "is not KEY=VALUE; write e.g. --param beta=1.5"),
    (RADIUS + ["--param", "beta=2"], "noise 'laplace' has no parameter beta; its parameters: none"),
    (_replace(RADIUS, "--noise", "pareto") + ["--param", "a=1.5"], "a must be > 2"),
    (RADIUS + ["--p-b", "0.2"], "the runner-up bound must satisfy p_b <= 1 - p_a"),
    (RADIUS[:-2], "the following arguments are required: --dim"),
    (["certify", "--data", "nowhere.pt", "--model", "m.pt", "--noise", "gaussian", "--sigma",
      "1", "--out", "o.tsv"], "data file 'nowhere.pt' does not exist"),
    (["certify", "--data", "digits", "--model", "m.pt", "--noise", "gaussian", "--sigma", "1",
      "--out", "o.tsv", "--n0", "200", "--n", "100"], "--n0 (200) must not exceed --n (100)"),
    (["curve", "nowhere.tsv"], "'nowhere.tsv' does not exist"),
])
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv, message):
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert message in err


def test_certify_bad_files_exit_2(small, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    argv = certify_args(small, tmp_path / "o.tsv")
    code, _, err = run_cli(_replace(argv, "--model", junk), capsys)
    assert code == 2 and "cannot read model checkpoint" in err
    other = tmp_path / "other.tsv"
    other.write_text("a,b,c\n1,2,3\n")
    code, _, err = run_cli(_replace(argv, "--out", other), capsys)
    assert code == 2 and "is not a certify TSV" in err and "choose another --out" in err
    assert other.read_text() == "a,b,c\n1,2,3\n"  # left alone
    torch.save({"x": torch.zeros(3, 5), "y": torch.zeros(3, dtype=torch.long)}, tmp_path / "d.pt")
    code, _, err = run_cli(_replace(argv, "--data", tmp_path / "d.pt"), capsys)
    assert code == 2 and "shape (5,) but the model expects inputs of shape (1, 8, 8)" in err


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "unicr_fast", "radius", "--norm", "0"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "norm must be > 0" in res.stderr


# -- validate, demo ----------------------------------------------------------------------------
def test_validate_tiny_writes_tsv_and_png(tmp_path, capsys):
    out = tmp_path / "val"
    code, stdout, err = run_cli(["validate", "--out", out, "--samples", "2000", "--dim", "3",
                                 "--points", "3", "--families", "gaussian", "laplace",
                                 "--norms", "1", "inf", "--no-progress", "--tol", "1e-12"], capsys)
    assert code == 1 and "FAIL" in err  # Monte-Carlo radii never match to 1e-12
    for fam in ("gaussian", "laplace"):
        assert (out / f"{fam}.png").read_bytes()[:4] == b"\x89PNG"
        for tag in ("1", "inf"):
            lines = (out / f"{fam}_l{tag}.tsv").read_text().splitlines()
            assert lines[0].split("\t") == ["p_a", "radius", "closed_form", "rel_err", "axis_bound"]
            assert len(lines) == 4
    rows = [line.split("\t") for line in (out / "gaussian_linf.tsv").read_text().splitlines()[1:]]
    for p_a, radius, closed, rel, _ in rows:
        assert float(closed) == pytest.approx(gaussian_radius(0.5, float(p_a), None, math.inf, 3),
                                              rel=1e-5)
        assert float(rel) == pytest.approx(float(radius) / float(closed) - 1, abs=1e-5)
    lap_inf = (out / "laplace_linf.tsv").read_text().splitlines()[1].split("\t")
    assert lap_inf[2] == "" and float(lap_inf[4]) > 0  # no closed form; the axis bound exists
    assert "gaussian" in stdout and "(no closed form)" in stdout
    assert (out / "summary.tsv").read_text().count("\n") == 5


def test_demo_tiny(tmp_path, capsys):
    code, out, err = run_cli(["demo", "--out", tmp_path, "--points", "3", "--n", "300",
                              "--epochs", "1", "--no-progress"], capsys)
    assert code == 0, err
    for name in ("gaussian_l2", "laplace_l1"):
        assert [r[0] for r in data_rows(tmp_path / f"certify_{name}.tsv")] == ["0", "150", "300"]
    assert (tmp_path / "curve.png").exists() and (tmp_path / "curve.tsv").exists()
    assert "gaussian_l2" in out and "score" in out


# -- data and checkpoints ----------------------------------------------------------------------
def test_digits_split_is_fixed_and_files_load(small):
    x_te, y_te = digits("test")
    x_tr, _ = digits("train")
    assert x_te.shape == (450, 1, 8, 8) and x_tr.shape == (1347, 1, 8, 8)
    assert 0 <= float(x_te.min()) and float(x_te.max()) <= 1
    assert torch.equal(load_dataset("digits")[0], x_te)
    x, y = load_dataset(small["npz"])
    assert torch.equal(x, x_te[:6]) and torch.equal(y, y_te[:6]) and y.dtype == torch.int64
    with pytest.raises(ValueError, match="neither a built-in data set"):
        load_dataset("data.csv")


def test_checkpoint_round_trip(tmp_path):
    model = build_model("cnn", in_channels=1, image_size=8, num_classes=10)
    save_checkpoint(tmp_path / "c.pt", model, "cnn", {"in_channels": 1, "image_size": 8}, 10,
                    [1, 8, 8], meta={"note": "x"})
    loaded, info = load_checkpoint(tmp_path / "c.pt")
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))
    assert info["arch"] == "cnn" and info["meta"] == {"note": "x"}
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build_model("resnet")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_certify_on_cuda_matches_columns_and_resumes(small, tmp_path, capsys):
    out = tmp_path / "gpu.tsv"
    assert run_cli(certify_args(small, out, "--max", "3", device="cuda"), capsys)[0] == 0
    code, _, err = run_cli(certify_args(small, out, device="cuda"), capsys)
    assert code == 0, err
    rows = data_rows(out)
    assert [int(r[0]) for r in rows] == list(range(6))
    assert sum(int(r[4]) for r in rows) >= 4


def test_second_writer_is_refused(small, tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "locked.tsv"
    with open(out, "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run_cli(certify_args(small, out), capsys)
    assert code == 2 and "another process is writing" in err
    assert out.read_text() == ""


def test_resume_a_file_without_settings_record(small, tmp_path, capsys):
    """A TSV with rows but no readable .params.json (another tool's, Cohen et al.'s format, or a
    deleted / damaged record) is not resumed unless --force-resume says its rows are of this run;
    then they are kept and this run's settings recorded. No rows, no record: a fresh start."""
    out = tmp_path / "cohen.tsv"
    params = tmp_path / ("cohen.tsv" + cli.PARAMS_SUFFIX)
    text = HEADER + "\n0\t2\t2\t0.412\t1\t0:00:00.812345\n"
    for record in (None, "{not json", "[1, 2]", b"\xff\xfe"):
        out.write_text(text)
        if record is None:
            params.unlink(missing_ok=True)
        else:
            params.write_bytes(record if isinstance(record, bytes) else record.encode())
        code, _, err = run_cli(certify_args(small, out, "--max", "3"), capsys)
        assert code == 2, (record, err)
        assert "missing or unreadable" in err and "--force-resume" in err and str(out) in err
        assert "Traceback" not in err and out.read_text() == text   # nothing appended
        assert (record is None) == (not params.exists())             # nor recorded
    code, _, err = run_cli(certify_args(small, out, "--max", "3", "--force-resume"), capsys)
    assert code == 0 and "missing or unreadable" in err, err
    rows = data_rows(out)
    assert [r[0] for r in rows] == ["0", "1", "2"] and rows[0][3] == "0.412"
    assert json.loads(params.read_text())["noise"] == {"name": "gaussian", "sigma": 0.25}
    code, _, err = run_cli(certify_args(small, out), capsys)         # recorded now: no flag
    assert code == 0 and "resumed after 3 rows" in err, err
    for empty in ("", HEADER + "\n"):                                # no rows: start afresh
        out.write_text(empty)
        params.unlink()
        code, _, err = run_cli(certify_args(small, out, "--max", "2"), capsys)
        assert code == 0, err
        assert [r[0] for r in data_rows(out)] == ["0", "1"] and params.exists()


def test_force_resume_is_documented(capsys):
    for command in ("certify", "iopt", "copt", "merge"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and "--force-resume" in out, command


@pytest.mark.parametrize("line, words", [
    ("1\t0\t0\tinf\t1\t0:00:01", "radius inf is not a finite number >= 0"),
    ("1\t0\t0\tnan\t1\t0:00:01", "radius nan is not a finite number >= 0"),
    ("1\t0\t0\t-0.5\t1\t0:00:01", "radius -0.5 is not a finite number >= 0"),
    ("0\t2\t2\t0.5\t1\t0:00:01", "idx 0 is on line 2 already"),
    ("9\t0\t0\t0.5\t1\t0:00:01", "idx 9, but the data set has 6 inputs"),
    ("1\t7\t7\t0.5\t1\t0:00:01", "label 7, but input 1 of the data set has label 0"),
    ("1\t0\t3\t0.5\t1\t0:00:01", "correct is 1 with predict 3 and label 0"),
    ("1\t0\t0\t0.5\t1", "not a certify row (5 fields)"),
    ("1\t0\t0\thalf\t1\t0:00:01", "not a certify row (could not convert"),
    ("1\t0\t0\t0.5\t1\tnan", "time nan is not a duration"),
], ids=["inf", "nan", "negative", "duplicate", "out_of_range", "label", "correct", "columns",
        "unparsable", "time"])
def test_resume_refuses_rows_this_run_cannot_have_written(small, tmp_path, capsys, line, words):
    """A row certify could not have written is named by file and line, with exit code 2; the
    file is left as it is (and ``unicr curve`` refuses what is wrong in the file alone). In
    six.pt input 1 has label 0, input 2 label 4."""
    out = tmp_path / "res.tsv"
    assert run_cli(certify_args(small, out, "--max", "1"), capsys)[0] == 0
    with open(out, "a") as f:
        f.write(line + "\n2\t4\t4\t0.5\t1\t0:00:01\n")   # a good row after the bad one
    text = out.read_text()
    code, _, err = run_cli(certify_args(small, out), capsys)
    assert code == 2 and "Traceback" not in err
    assert f"'{out}' line 3" in err and words in err, err
    assert "delete that line" in err and out.read_text() == text
    if "data set" not in words:               # wrong in itself, not only for this data set
        code, _, err = run_cli(["curve", out, "--no-plot"], capsys)
        assert code == 2 and f"'{out}' line 3" in err and words in err, err



def test_resume_refuses_rows_off_the_skip_grid(small, tmp_path, capsys):
    out = tmp_path / "res.tsv"
    assert run_cli(certify_args(small, out, "--skip", "2", "--max", "3"), capsys)[0] == 0
    with open(out, "a") as f:
        f.write("1\t0\t0\t0.5\t1\t0:00:01\n")
    code, _, err = run_cli(certify_args(small, out, "--skip", "2"), capsys)
    assert code == 2 and f"'{out}' line 4" in err and "idx 1 is not one of 0, 2, 4" in err, err


# -- bench -------------------------------------------------------------------------------------

def test_bench_times_every_backend_against_the_reference(capsys):
    code, out, err = run_cli(["bench", "--families", "laplace", "uniform", "--samples", "300",
                              "--dim", "40", "--shifts", "3", "--repeats", "1"], capsys)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[2:]]
    backends = uc.available_backends()
    assert len(rows) == 2 * len(backends)          # each family: the reference + the others
    assert {r[1] for r in rows} == set(backends)
    assert all(r[1] != "torch" or r[3] == "1.0x" for r in rows)


def test_bench_rejects_families_without_settings(capsys):
    code, _, err = run_cli(["bench", "--families", "radial", "--samples", "10"], capsys)
    assert code == 2 and "no benchmark settings" in err
