"""C-OPT and I-OPT (unicr_fast.optimize, ``unicr copt`` / ``unicr iopt``).

Kept small (a few digits points, small n, tiny radius-engine settings, Gaussian noise -- closed
form radius -- wherever the engine is not the point) so the file runs in well under three minutes
on two busy cores. Every statistical bound says where it comes from."""
import math

import numpy as np
import pytest
import torch
from scipy.special import expit
from scipy.stats import binom
from scipy.stats import norm as normal

import unicr_fast as uc
from unicr_fast import cli, curve
from unicr_fast import optimize as opt
from unicr_fast.demo import MLP_KWARGS, train_mlp
from unicr_fast.models import save_checkpoint

# Radius engine settings for tests: cheap direction search, few samples (see tests/test_smooth.py).
FAST = dict(search_samples=2_000, particles=4, iterations=2)
DUAL = {1: math.inf, 2: 2.0}


class ZeroNoise:
    """Stands in for a noise in demo.train_mlp: training without any noise."""

    def sample(self, shape, generator=None, device=None, dtype=torch.float32):
        return torch.zeros(shape, dtype=dtype)


class Linear(torch.nn.Module):
    """f(x) = [w.x + b > 0]: under symmetric noise its smoothed classifier is itself, so its true
    l_p robust radius at x is |w.x + b| / ||w||_q (tests/test_smooth.py)."""

    def __init__(self, w, b=0.0):
        super().__init__()
        self.w, self.b = torch.as_tensor(w, dtype=torch.float64), float(b)

    def forward(self, x):
        z = x.flatten(1).to(torch.float64) @ self.w + self.b
        return torch.stack([-z, z], dim=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def digits_parts():
    """The digits train split cut into fit / validation parts, and two MLPs trained on the fit
    part for a few epochs: one with Gaussian noise (sigma 0.25), one with no noise at all."""
    x_fit, y_fit, x_val, y_val = opt.digits_split()
    noisy = train_mlp(uc.noise.Gaussian(0.25), x_fit, y_fit, epochs=4)
    clean = train_mlp(ZeroNoise(), x_fit, y_fit, epochs=4)
    return dict(x_fit=x_fit, y_fit=y_fit, x_val=x_val, y_val=y_val, noisy=noisy, clean=clean)


# -- NoiseRadii ---------------------------------------------------------------------------------
def test_digits_split_leaves_the_test_split_alone():
    """C-OPT's validation points are cut from the digits *train* split: fit + validation is
    exactly the train split (as a multiset of rows), and the split is fixed by its seed."""
    from unicr_fast.datasets import digits
    x_fit, y_fit, x_val, y_val = opt.digits_split()
    x_tr, y_tr = digits("train")
    both = torch.cat([torch.cat([x_fit, x_val]).flatten(1),
                      torch.cat([y_fit, y_val])[:, None].float()], 1)
    ref = torch.cat([x_tr.flatten(1), y_tr[:, None].float()], 1)
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, ref.tolist()))
    assert len(x_val) == round(0.25 * len(x_tr)) or abs(len(x_val) - 0.25 * len(x_tr)) < 1
    assert torch.equal(opt.digits_split()[2], x_val)


def test_radius_scales_with_sigma_and_gaussian_is_closed_form():
    """R(sigma) = sigma R(1) for a scale family (module docstring): the cache of the unit noise
    answers every sigma. Checked against the engine run directly at sigma on the same seed: the
    samples are the unit samples scaled, so the two agree to the bisection tolerance (rtol 1e-4)
    up to float32 rounding of the samples; 2e-3 relative leaves room for a tie flipping."""
    radii = opt.NoiseRadii(num_samples=4000, radius_kwargs=FAST, step=0.01)
    p_a = expit(np.array([85, 220, 460]) * 0.01)   # points of the cache's grid: no rounding
    for sigma in (0.3, 1.7):
        noise = uc.noise.GeneralNormal(sigma, 1.5)
        got = radii.radii(noise, p_a, None, 1, 3)
        direct = uc.certified_radius(noise, p_a, None, 1, 3, 4000, **FAST)
        np.testing.assert_allclose(got, direct, rtol=2e-3)
    assert len(radii) == 1 and radii.misses == 3 and radii.hits == 3   # one shape, one engine run
    for noise in (uc.noise.Gaussian(0.4), uc.noise.GeneralNormal(0.4, 2.0)):
        assert radii.radius(noise, 0.9, None, 2, 10) == pytest.approx(0.4 * normal.ppf(0.9),
                                                                       rel=1e-12)
    assert radii.radius(uc.noise.Gaussian(0.4), 0.5, None, 2, 10) == 0.0
    assert len(radii) == 1   # Gaussian never touches the engine


# -- C-OPT ---------------------------------------------------------------------------------------
def test_copt_best_is_the_argmax_and_beats_the_start(digits_parts, tmp_path):
    """C-OPT's best setting is the argmax over a grid that contains the start, so its score is
    >= the start's. Checked exactly: both scores are recomputed from scratch (train_fn is
    deterministic; the radii come from the run's caches, so the grid points are the same)."""
    d = digits_parts
    x, y = d["x_val"][:8], d["y_val"][:8]
    train_fn = opt.digits_train_fn(d["x_fit"], d["y_fit"], epochs=2)
    grid = opt.noise_grid(sigma=(0.25, 0.5), beta=(1.5, 2.0))
    start = grid[0]
    kw = dict(norm=1, n0=50, n=300, alpha=0.01, batch_size=300)
    res = opt.copt(train_fn, x, y, grid, start=start, radius_samples=3000,
                   radius_kwargs=FAST, cache_step=0.05, progress=False,
                   certify_dir=str(tmp_path / "cert"), **kw)
    assert [r.noise for r in res.rows] == grid
    scores = [r.score for r in res.rows]
    assert res.best.score == max(scores) and res.start.noise == start
    assert res.best.score >= res.start.score
    for row in (res.start, res.best):
        again = opt.score_setting(train_fn(row.noise), row.noise, x, y, radii=res.radii, **kw)
        assert curve.robustness_score(again) == row.score
    # the per-setting certify TSV is Cohen's format and gives the same score
    tsv = tmp_path / "cert" / (opt.noise_tag(res.best.noise) + ".tsv")
    assert curve.robustness_score(tsv) == pytest.approx(res.best.score, rel=1e-5)
    assert any(r.score > 0 for r in res.rows)


def test_noise_grid_takes_a_family_beta_through_params():
    """Radial noise's own beta, and a fixed general_normal beta, collide with the grid's beta
    keyword: they go through ``params`` (as `unicr copt --param beta=...` passes them)."""
    radial = opt.noise_grid("radial", sigma=(0.25, 0.5), beta=None,
                            params={"q": 2.0, "beta": 1.0, "dim": 64})
    assert [n.params["beta"] for n in radial] == [1.0, 1.0]
    assert [n.sigma for n in radial] == [0.25, 0.5]
    fixed = opt.noise_grid("general_normal", sigma=(0.5,), beta=None, params={"beta": 3.0})
    assert [(n.name, n.params["beta"]) for n in fixed] == [("general_normal", 3.0)]


def test_copt_resumes_an_interrupted_run(digits_parts, tmp_path):
    """An interrupted run keeps the scored settings in its TSV; the rerun skips them (train_fn
    is not called for them) and ends with the table an uninterrupted run writes."""
    d = digits_parts
    x, y = d["x_val"][:6], d["y_val"][:6]
    grid = opt.noise_grid("gaussian", sigma=(0.2, 0.3, 0.4), beta=None)
    calls = []

    def train_fn(noise):
        calls.append(noise.sigma)
        if noise.sigma == 0.4 and len(calls) == 3:
            raise KeyboardInterrupt
        return d["noisy"]

    kw = dict(n0=20, n=200, batch_size=200, progress=False, settings={"model": "noisy"})
    out = tmp_path / "copt.tsv"
    with pytest.raises(KeyboardInterrupt):
        opt.copt(train_fn, x, y, grid, out=str(out), **kw)
    assert [r.noise.sigma for r in opt.read_copt_tsv(out)] == [0.2, 0.3]
    with open(out, "a") as f:        # a kill in the middle of writing a row
        f.write("gaussian\t0.4\t0.1")
    res = opt.copt(train_fn, x, y, grid, out=str(out), **kw)
    assert calls == [0.2, 0.3, 0.4, 0.4] and res.resumed == 2
    full = opt.copt(lambda noise: d["noisy"], x, y, grid, **kw)
    assert [r.score for r in res.rows] == [r.score for r in full.rows]
    assert [(r.noise, r.score) for r in opt.read_copt_tsv(out)] == \
        [(r.noise, r.score) for r in full.rows]
    # a rerun with everything done trains nothing; other settings are refused
    assert opt.copt(train_fn, x, y, grid, out=str(out), **kw).resumed == 3 and len(calls) == 4
    with pytest.raises(ValueError, match="other settings.*n: 200 there, 100 now"):
        opt.copt(train_fn, x, y, grid, out=str(out), **{**kw, "n": 100})


def test_copt_refuses_rows_it_cannot_check(digits_parts, tmp_path):
    """Scores without a readable settings record are resumed only with force_resume; a line that
    is no scored setting of this run is named by its number. The table is left as it is."""
    d = digits_parts
    x, y = d["x_val"][:4], d["y_val"][:4]
    grid = opt.noise_grid("gaussian", sigma=(0.2, 0.3), beta=None)
    kw = dict(n0=20, n=100, batch_size=100, progress=False)
    out = tmp_path / "copt.tsv"
    params = tmp_path / ("copt.tsv" + cli.PARAMS_SUFFIX)
    opt.copt(lambda nz: d["noisy"], x, y, grid[:1], out=str(out), **kw)
    good = out.read_text()
    for record in (None, "{"):
        if record is None:
            params.unlink()
        else:
            params.write_text(record)
        with pytest.raises(ValueError, match="missing or unreadable.*force_resume=True"):
            opt.copt(lambda nz: d["noisy"], x, y, grid, out=str(out), **kw)
        assert out.read_text() == good
    res = opt.copt(lambda nz: d["noisy"], x, y, grid[:1], out=str(out), force_resume=True, **kw)
    assert res.resumed == 1 and "val_sha256" in params.read_text()
    for line, words in [("gaussian\t0.3\tnan\t0.5\t0\t4\t1.0", "score nan is not a finite"),
                        ("gaussian\t0.3\t0.1\t1.5\t0\t4\t1.0", "accuracy 1.5 is not in"),
                        ("gaussian\t0.2\t0.1\t0.5\t0\t4\t1.0", "scored on an earlier line"),
                        ("gaussian\t0.3\t0.1\t0.5\t0\t5\t1.0", "scored on 5 validation points")]:
        out.write_text(good + line + "\n")
        with pytest.raises(ValueError, match="line 3 .*" + words):
            opt.copt(lambda nz: d["noisy"], x, y, grid, out=str(out), **kw)
        assert out.read_text() == good + line + "\n"


def test_non_finite_model_outputs_are_refused_by_iopt():
    class NaNModel(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 2), math.nan)

    iopt = opt.InputOptimizer(uc.Smooth(NaNModel(), 2, sigma=0.5), n_select=50)
    with pytest.raises(ValueError, match=r"non-finite outputs \(NaN/inf\) for 10 of 10 noisy"):
        iopt.certify(torch.zeros(3), 10, 100, 0.01, 50)


# -- I-OPT ---------------------------------------------------------------------------------------
def test_iopt_never_selects_below_the_start(digits_parts):
    """The start is always a candidate and the climb only moves to a strictly better score, so
    the chosen setting's selection radius is >= the start's on the same selection draws. The
    start's selection radius is recomputed by an optimizer that may not move (max_steps=0)."""
    d = digits_parts
    smooth = uc.Smooth(d["noisy"], 10, sigma=0.5)
    climber = opt.InputOptimizer(smooth, n_select=100)
    still = opt.InputOptimizer(smooth, n_select=100, max_steps=0, radii=climber.radii)
    moved = 0
    for i in range(8):
        climber.seed = still.seed = 1000 + i
        res = climber.optimize(d["x_val"][i], 50, 500, 0.001, 500)
        base = still.optimize(d["x_val"][i], 50, 500, 0.001, 500)
        assert base.noise == smooth.noise and base.evaluations == 1
        assert res.start_select_radius == base.select_radius == base.start_select_radius
        assert res.select_radius >= res.start_select_radius
        assert res.trace[0][0] == smooth.noise.params            # the start is evaluated first
        assert max(t[1] for t in res.trace) == res.select_radius  # and the best is kept
        moved += res.steps > 0
    assert moved > 0   # sigma 0.5 is too large for this model: the climb has work to do


def test_iopt_certifies_a_model_never_trained_with_noise(digits_parts):
    """An MLP trained without noise barely survives Gaussian noise of sigma 1 (plain
    certification abstains or is wrong on most points); I-OPT climbs down to a sigma it
    survives and certifies most of them."""
    d = digits_parts
    smooth = uc.Smooth(d["clean"], 10, sigma=1.0)
    iopt = opt.InputOptimizer(smooth, n_select=100)
    plain = good = 0
    for i in range(12):
        smooth.seed = iopt.seed = 2000 + i
        label, radius = smooth.certify(d["x_val"][i], 50, 500, 0.001, 500)
        plain += label == int(d["y_val"][i]) and radius > 0
        res = iopt.optimize(d["x_val"][i], 50, 500, 0.001, 500)
        good += res.label == int(d["y_val"][i]) and res.radius > 0
        if res.label != opt.ABSTAIN:
            assert res.noise.sigma < 1.0
    assert good >= 6 and good > plain


@pytest.mark.parametrize("noise, norm, alpha, inputs, engine_samples", [
    (uc.noise.Gaussian(0.5), 2, 0.05, 800, None),
    (uc.noise.GeneralNormal(0.5, 1.5), 1, 0.001, 30, 10_000),
], ids=["gaussian-l2-sigma", "general_normal-l1-sigma-beta"])
def test_iopt_final_certificates_respect_alpha(noise, norm, alpha, inputs, engine_samples):
    """The linear check of tests/test_smooth.py with I-OPT choosing the noise per input. A
    violation (wrong label or radius above the true |w.x + b| / ||w||_q) needs the fresh
    Clopper–Pearson bound to fail, probability <= alpha per input whatever setting was chosen
    (InputOptimizer's docstring). Gaussian: closed-form radii, so alpha_eff = alpha; a large
    alpha and 800 inputs make the check sharp: the allowed count is 72 (rate 9%), while
    certifying on the selection draws instead of fresh ones was measured at a 12.8% rate
    (51 of 400; honest: 94 of 2000 = 4.7%), i.e. ~100 expected here.
    general_normal: the engine's MC error is granted as in test_smooth (3 sqrt(n / N) CP
    standard errors, failing w.p. sf(3)). Violations are Binomial(inputs, <= alpha_eff) over
    independent inputs; the test allows its 1 - 1e-6 quantile."""
    d, n0, n, b = 3, 50, 400, 0.1
    rng = np.random.default_rng(11)
    kwargs = {} if engine_samples is None else dict(radius_samples=engine_samples,
                                                   radius_kwargs=FAST)
    smooth = uc.Smooth(Linear(np.ones(d)), 2, noise=noise, norm=norm, **kwargs)
    iopt = opt.InputOptimizer(smooth, n_select=100, max_steps=4, cache_step=0.05)
    directions = [np.eye(d)[0], np.ones(d)]
    violations = certified = moved = 0
    for i in range(inputs):
        w = directions[i] if i < len(directions) else rng.normal(size=d)
        smooth.model, iopt.seed = Linear(w, b=b), 5000 + i
        x = torch.from_numpy(rng.normal(scale=noise.sigma, size=d))
        res = iopt.optimize(x, n0, n, alpha, 200)
        assert res.select_radius >= res.start_select_radius
        s = float(x @ torch.from_numpy(w)) + b
        true = abs(s) / np.linalg.norm(w, DUAL[norm])
        moved += res.steps > 0
        if res.label != opt.ABSTAIN:
            certified += 1
            violations += res.label != int(s > 0) or res.radius > true
    alpha_eff = alpha if engine_samples is None else \
        normal.sf(normal.isf(alpha) - 3 * math.sqrt(n / engine_samples)) + normal.sf(3)
    assert certified >= inputs // 2 and moved > 0   # something to check, and settings did move
    assert violations <= binom.ppf(1 - 1e-6, inputs, alpha_eff)


def test_iopt_is_deterministic_and_cli_compatible(digits_parts):
    d = digits_parts
    smooth = uc.Smooth(d["noisy"], 10, sigma=0.25)
    a = opt.InputOptimizer(smooth, n_select=100)
    a.seed = 7
    first = a.certify(d["x_val"][0], 20, 200, 0.01, 200)
    again = opt.iopt_certify(uc.Smooth(d["noisy"], 10, sigma=0.25, seed=7), d["x_val"][0], 20,
                             200, 0.01, 200, n_select=100)
    assert first == (again.label, again.radius) and a.last.noise == again.noise


# -- CLI -----------------------------------------------------------------------------------------
def run_cli(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_copt_tiny_and_resume(tmp_path, capsys):
    out = tmp_path / "copt"
    argv = ["copt", "--out", out, "--sigmas", "0.25", "0.4", "--betas", "2", "--points", "4",
            "--epochs", "1", "--n0", "20", "--n", "100", "--device", "cpu", "--no-progress"]
    code, text, err = run_cli(argv, capsys)
    assert code == 0, err
    rows = opt.read_copt_tsv(out / "copt.tsv")
    assert [r.noise.sigma for r in rows] == [0.25, 0.4] and "best:" in text
    for name in ("copt.png", "best.json", "models/general_normal_sigma0.25_beta2.pt",
                 "certify/general_normal_sigma0.4_beta2.tsv"):
        assert (out / name).exists(), name
    assert (out / "copt.png").read_bytes()[:4] == b"\x89PNG"
    code, text, err = run_cli(argv, capsys)
    assert code == 0 and "resumed: 2 of 2" in err
    code, _, err = run_cli([*argv, "--alpha", "0.01"], capsys)
    assert code == 2 and "other settings" in err and "alpha" in err


def test_cli_iopt_writes_rows_and_chosen_settings(digits_parts, tmp_path, capsys):
    model = tmp_path / "mlp.pt"
    save_checkpoint(model, digits_parts["noisy"], "mlp", MLP_KWARGS, 10, [1, 8, 8])
    out = tmp_path / "iopt.tsv"
    argv = ["iopt", "--data", "digits", "--model", model, "--noise", "gaussian", "--sigma", "0.5",
            "--out", out, "--n0", "20", "--n", "300", "--n-select", "100", "--batch", "300",
            "--max", "3", "--device", "cpu", "--no-progress"]
    code, text, err = run_cli(argv, capsys)
    assert code == 0, err
    res = curve.read_certify_tsv(out)
    assert res.idx.tolist() == [0, 1, 2]
    side = (tmp_path / "iopt.tsv.iopt.tsv").read_text().splitlines()
    assert side[0].split("\t")[:3] == ["idx", "sigma", "beta"]
    assert [int(line.split("\t")[0]) for line in side[1:]] == [0, 1, 2]
    # each row is InputOptimizer.certify with the input's own seed
    from unicr_fast.datasets import digits
    x, _ = digits("test")
    iopt = opt.InputOptimizer(uc.Smooth(digits_parts["noisy"], 10, sigma=0.5), n_select=100)
    iopt.seed = cli.point_seed(0, 2)
    label, radius = iopt.certify(x[2], 20, 300, 0.001, 300)
    assert (int(res.predict[2]), float(res.radius[2])) == (label, pytest.approx(radius, rel=1e-5))
    assert float(side[3].split("\t")[1]) == pytest.approx(iopt.last.noise.sigma, rel=1e-5)
    code, _, err = run_cli([*argv[:-5], "--max", "4", "--device", "cpu", "--no-progress"], capsys)
    assert code == 0 and "resumed after 3 rows" in err
    code, _, err = run_cli([*argv, "--sigma-factor", "2"], capsys)
    assert code == 2 and "sigma_factor" in err
    # without its I-OPT record the rows are resumed only with --force-resume
    (tmp_path / "iopt.tsv.iopt.json").unlink()
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "iopt.tsv.iopt.json is missing or unreadable" in err
    assert "--force-resume" in err
    code, _, err = run_cli([*argv, "--force-resume"], capsys)
    assert code == 0 and "warning" in err, err
    assert (tmp_path / "iopt.tsv.iopt.json").exists()
    # a row this run cannot have written: named, before the side files are touched
    side_text = (tmp_path / "iopt.tsv.iopt.tsv").read_text()
    with open(out, "a") as f:
        f.write("5\t0\t0\tinf\t1\t0:00:01\n")
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and f"'{out}' line 6" in err and "radius inf" in err, err
    assert (tmp_path / "iopt.tsv.iopt.tsv").read_text() == side_text


@pytest.mark.parametrize("argv, message", [
    (["copt", "--family", "laplace", "--betas", "1"], "--betas"),
    (["copt", "--start", "sigma=0.3"], "--start"),
    (["copt", "--n0", "50", "--n", "10"], "--n0"),
    (["copt", "--family", "pareto", "--param", "a=1.5"], "a must be > 2"),
    (["iopt", "--data", "digits", "--model", "nope.pt", "--noise", "gaussian", "--sigma", "0.5",
      "--out", "x.tsv"], "nope.pt"),
])
def test_cli_bad_arguments_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and message in err


# -- bad input -----------------------------------------------------------------------------------
def good_smooth(**kw):
    return uc.Smooth(Linear(np.ones(3)), 2, noise=kw.pop("noise", uc.noise.GeneralNormal(0.5, 2.0)),
                     **kw)


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(params=("sigma", "alpha")), ValueError, "params"),
    (dict(params="sigma"), TypeError, "params"),
    (dict(params=()), ValueError, "params"),
    (dict(sigma_factor=1.0), ValueError, "sigma_factor"),
    (dict(sigma_factor="2"), TypeError, "sigma_factor"),
    (dict(sigma_range=(0.6, 1.0)), ValueError, "sigma_range"),
    (dict(sigma_range=0.6), TypeError, "sigma_range"),
    (dict(beta_range=(2.5, 3.0)), ValueError, "beta_range"),
    (dict(beta_step=-0.1), ValueError, "beta_step"),
    (dict(max_steps=-1), ValueError, "max_steps"),
    (dict(n_select=0), ValueError, "n_select"),
    (dict(radii="cache"), TypeError, "radii"),
    (dict(cache_step=0.0), ValueError, "step"),
])
def test_input_optimizer_bad_options(kwargs, error, word):
    with pytest.raises(error, match=word):
        opt.InputOptimizer(good_smooth(), **kwargs)


def test_input_optimizer_bad_smooth_and_calls():
    with pytest.raises(TypeError, match="smooth"):
        opt.InputOptimizer(Linear(np.ones(3)))
    custom = uc.noise.Custom(lambda x: -x * x, lambda s, g, d: torch.randn(s, generator=g))
    with pytest.raises(TypeError, match="smooth.noise"):
        opt.InputOptimizer(good_smooth(noise=custom))
    with pytest.raises(ValueError, match="beta"):
        opt.InputOptimizer(good_smooth(noise=uc.noise.Laplace(0.5)), params=("sigma", "beta"))
    with pytest.raises(ValueError, match="beta_range"):
        opt.InputOptimizer(good_smooth(noise=uc.noise.Laplace(0.5)), beta_range=(1, 2))
    iopt = opt.InputOptimizer(good_smooth(noise=uc.noise.Gaussian(0.5)))
    for args, error, word in [
        (([0.0, 1.0, 2.0], 10, 100, 0.01, 50), TypeError, "x"),
        ((torch.zeros(3, dtype=torch.int64), 10, 100, 0.01, 50), TypeError, "x"),
        ((torch.tensor([0.0, math.nan, 1.0]), 10, 100, 0.01, 50), ValueError, "x"),
        ((torch.zeros(3), 200, 100, 0.01, 50), ValueError, "n0"),
        ((torch.zeros(3), 10, 100, 1.0, 50), ValueError, "alpha"),
        ((torch.zeros(3), 10, 100, 0.01, 0), ValueError, "batch_size"),
        ((torch.zeros(3), 10, 10.5, 0.01, 50), TypeError, "n must"),
    ]:
        with pytest.raises(error, match=word):
            iopt.optimize(*args)


def test_copt_and_grid_bad_input(digits_parts):
    x, y = digits_parts["x_val"][:2], digits_parts["y_val"][:2]
    model = digits_parts["noisy"]
    grid = opt.noise_grid("gaussian", sigma=(0.25,), beta=None)
    cases = [
        (lambda: opt.copt("train", x, y, grid), TypeError, "train_fn"),
        (lambda: opt.copt(lambda nz: model, x, y, []), ValueError, "noises"),
        (lambda: opt.copt(lambda nz: model, x, y, uc.noise.Gaussian(0.3)), TypeError, "noises"),
        (lambda: opt.copt(lambda nz: model, x, y, grid * 2), ValueError, "twice"),
        (lambda: opt.copt(lambda nz: model, x, y, grid, start=uc.noise.Gaussian(0.3)),
         ValueError, "start"),
        (lambda: opt.copt(lambda nz: "model", x, y, grid, progress=False), TypeError, "train_fn"),
        (lambda: opt.copt(lambda nz: model, x, y, grid, n0=50, n=10), ValueError, "n0"),
        (lambda: opt.copt(lambda nz: model, x, y[:1], grid), ValueError, "y"),
        (lambda: opt.copt(lambda nz: model, x.numpy(), y, grid), TypeError, "x"),
        (lambda: opt.copt(lambda nz: model, x, y.float(), grid), TypeError, "y"),
        (lambda: opt.copt(lambda nz: model, x, y, grid, norm=0), ValueError, "norm"),
        (lambda: opt.copt(lambda nz: model, x, y, grid, radius_kwargs={"dim": 3}), ValueError,
         "radius_kwargs"),
        (lambda: opt.noise_grid("laplace", sigma=(0.5,)), ValueError, "beta"),
        (lambda: opt.noise_grid(sigma=(0.5, -1.0)), ValueError, "sigma"),
        (lambda: opt.noise_grid(sigma=0.5), TypeError, "sigma"),
        (lambda: opt.noise_grid(sigma=(0.5,), beta=()), ValueError, "beta"),
        (lambda: opt.noise_grid("nope", sigma=(0.5,), beta=None), ValueError, "nope"),
        (lambda: opt.NoiseRadii(num_samples=0), ValueError, "num_samples"),
        (lambda: opt.digits_split(val_fraction=1.5), ValueError, "val_fraction"),
        (lambda: opt.score_setting(model, "gaussian", x, y), TypeError, "noise"),
    ]
    for call, error, word in cases:
        with pytest.raises(error, match=word):
            call()
