"""Attack check (unicr_fast.attack): projections, and PGD on the smoothed digits MLP within the
certified radii -- every certified input holds up to the binomial bound, while ten times the
radius changes predictions (the attack is not a no-op). Gaussian noise (closed-form radius) in
l1, l2 and linf keeps the file well under two minutes on two cores."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom

import unicr_fast as uc
from unicr_fast import attack as A
from unicr_fast import cli

NORMS = [1, 2, math.inf]


# -- projections -----------------------------------------------------------------------------------
def brute_l1_projection(v: np.ndarray, r: float) -> np.ndarray:
    """Euclidean projection onto {||w||_1 <= r} by enumeration: for every support S and the sign
    pattern of v, the closest point of the face {sign(v)_S . w_S = r, w off S = 0} is
    w_S = v_S - t sign(v_S) with t = (|v_S|_1 - r) / |S|; keep the feasible candidates (plus v
    itself if inside, and 0) and take the nearest. The true projection is among them."""
    d = len(v)
    if np.abs(v).sum() <= r:
        return v.copy()
    s = np.sign(v)
    best, best_dist = np.zeros(d), np.linalg.norm(v)
    for k in range(1, d + 1):
        for S in itertools.combinations(range(d), k):
            S = list(S)
            t = (np.abs(v[S]).sum() - r) / k
            w = np.zeros(d)
            w[S] = v[S] - t * s[S]
            if np.abs(w).sum() <= r * (1 + 1e-12) + 1e-12:
                dist = np.linalg.norm(v - w)
                if dist < best_dist:
                    best, best_dist = w, dist
    return best


def test_l1_projection_matches_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(200):
        d = int(rng.integers(1, 7))
        v = rng.normal(size=d) * rng.choice([0.1, 1.0, 5.0])
        if trial % 5 == 0:
            v[rng.integers(0, d)] = 0.0          # zeros and ties are fine too
        if trial % 7 == 0:
            v = np.round(v)
        r = float(rng.uniform(0.05, 3.0))
        got = A.project_l1(torch.tensor(v[None]), r)[0].numpy()
        np.testing.assert_allclose(got, brute_l1_projection(v, r), atol=1e-10, rtol=0)


@pytest.mark.parametrize("norm", NORMS, ids=["l1", "l2", "linf"])
def test_projection_norm_idempotent_and_inside_unchanged(norm):
    gen = torch.Generator().manual_seed(1)
    delta = torch.randn(64, 3, 5, generator=gen, dtype=torch.float64) * 2
    radius = torch.rand(64, generator=gen, dtype=torch.float64) * 3
    radius[:4] = 0.0                             # a zero radius sends every row to 0
    proj = A.project(delta, radius, norm)
    assert proj.shape == delta.shape
    norms = A.lp_norm(proj, norm)
    assert (norms <= radius * (1 + 1e-12) + 1e-15).all()
    assert (proj[:4] == 0).all()
    torch.testing.assert_close(A.project(proj, radius, norm), proj, atol=1e-12, rtol=0)
    inside = A.lp_norm(delta, norm) <= radius
    big = A.project(delta, A.lp_norm(delta, norm) + 1, norm)   # all inside: unchanged
    assert torch.equal(big, delta)
    # Outside points land on the sphere (the projection of an outside point is on the boundary).
    out = ~inside & (radius > 0)
    torch.testing.assert_close(norms[out], radius[out], atol=1e-12, rtol=1e-12)
    # Nothing inside the ball is closer (Euclidean) than the projection: check random points.
    pts = A.project(torch.randn(64, 3, 5, generator=gen, dtype=torch.float64) * 2, radius, norm)
    dist_proj = (delta - proj).flatten(1).norm(dim=1)
    dist_pts = (delta - pts).flatten(1).norm(dim=1)
    assert (dist_proj <= dist_pts + 1e-12).all()


def test_l2_and_linf_projections_closed_form():
    v = torch.tensor([[3.0, -4.0]])
    torch.testing.assert_close(A.project_l2(v, 1.0), torch.tensor([[0.6, -0.8]]))
    torch.testing.assert_close(A.project_linf(v, 1.0), torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(A.project_l1(v, 1.0), torch.tensor([[0.0, -1.0]]))
    torch.testing.assert_close(A.project_l1(torch.tensor([[1.0, 1.0]]), 1.0),
                               torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="l1, l2 and linf"):
        A.project(v, 1.0, 1.5)
    with pytest.raises(ValueError, match="radius"):
        A.project(v, -1.0, 2)


@pytest.mark.parametrize("norm", NORMS, ids=["l1", "l2", "linf"])
def test_ascent_direction_unit_norm(norm):
    g = torch.randn(4, 64, generator=torch.Generator().manual_seed(2))
    d = A.ascent_direction(g, norm)
    torch.testing.assert_close(A.lp_norm(d, norm), torch.ones(4))
    assert ((d * g).sum(1) > 0).all()


def test_violation_bound():
    # P(Bin(50, 0.002) > k) < 1e-3 first at k = 2 (P(>= 3) ~ 1.5e-4, P(>= 2) ~ 4.4e-3)
    assert A.violation_bound(50, 0.002) == 2
    assert binom.sf(2, 50, 0.002) < 1e-3 <= binom.sf(1, 50, 0.002)
    assert A.violation_bound(0, 0.1) == 0


# -- the attack on the digits demo model -------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The demo's MLP (Gaussian noise, sigma 0.25; 4 epochs here) and certify TSVs of 40
    held-out digits in l1, l2 and linf (Gaussian radii are closed-form: no engine search)."""
    from unicr_fast.datasets import digits
    from unicr_fast.demo import MLP_KWARGS, SIGMA, train_mlp
    from unicr_fast.models import save_checkpoint
    root = tmp_path_factory.mktemp("attack")
    x, y = digits("test")
    torch.save({"x": x[:40].clone(), "y": y[:40].clone()}, root / "forty.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x_tr, y_tr = digits("train")
        model = train_mlp(uc.noise.make("gaussian", sigma=SIGMA), x_tr, y_tr, epochs=4)
        save_checkpoint(root / "mlp.pt", model, "mlp", MLP_KWARGS, 10, [1, 8, 8])
        tsvs = {}
        for norm in NORMS:
            tsv = root / f"cert_l{norm}.tsv"
            cli.certify_file(str(root / "forty.pt"), str(root / "mlp.pt"),
                             uc.noise.make("gaussian", sigma=SIGMA), norm, str(tsv), n0=50,
                             n=1000, alpha=0.001, batch=1000, device="cpu", progress=False)
            tsvs[norm] = str(tsv)
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "tsvs": tsvs}


def run_attack(digits_run, norm, scale, **kw):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = digits_run["root"] / f"attack_l{norm}_x{scale:g}.tsv"
        return A.attack_file(digits_run["tsvs"][norm], str(out), n=1000, radius_scale=scale,
                             steps=10, m=8, device="cpu", progress=False, **kw)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("norm", NORMS, ids=["l1", "l2", "linf"])
def test_certified_inputs_hold_and_ten_times_the_radius_does_not(digits_run, norm):
    from unicr_fast.curve import read_certify_tsv
    cert = read_certify_tsv(digits_run["tsvs"][norm])
    certified = int((cert.predict != -1).sum())
    assert certified >= 25                       # the model certifies most points

    held = run_attack(digits_run, norm, 1.0)
    assert held.attacked == certified
    assert held.held + held.abstained + held.changed == certified
    # Each input changes class w.p. <= alpha_certify + alpha_predict = 0.002, independently.
    allowed = A.violation_bound(certified, 0.002)
    # (Abstentions contradict nothing: near the edge of the ball the top two classes can be too
    # close for predict's binomial test; they are reported, not bounded.)
    assert held.changed <= allowed, held.line()
    # the perturbations stayed in the certified balls
    radius = dict(zip(cert.idx.tolist(), cert.radius.tolist()))
    assert all(abs(r[1] - radius[r[0]]) <= 1e-6 * radius[r[0]] for r in held.rows)

    flipped = run_attack(digits_run, norm, 10.0)
    assert flipped.changed >= certified // 2, flipped.line()  # the attack does something


def test_attack_cli_writes_tsv_and_summary(digits_run, capsys):
    out = digits_run["root"] / "cli_attack.tsv"
    argv = ["attack", digits_run["tsvs"][2], "--out", str(out), "--n", "500", "--steps", "3",
            "--m", "4", "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "certified inputs held" in printed and str(out) in printed
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == list(A.HEADER)
    fields = [line.split("\t") for line in lines[1:]]
    assert all(len(f) == 4 and f[3] in ("0", "1") for f in fields)
    assert all((f[3] == "1") <= (f[2] != "-1") for f in fields)
    # A model other than the certified one is refused.
    other = digits_run["root"] / "other.pt"
    from unicr_fast.demo import MLP_KWARGS
    from unicr_fast.models import build_model, save_checkpoint
    save_checkpoint(other, build_model("mlp", **MLP_KWARGS), "mlp", MLP_KWARGS, 10, [1, 8, 8])
    assert cli.main(argv + ["--model", str(other)]) == 2
    assert "not the one" in capsys.readouterr().err
