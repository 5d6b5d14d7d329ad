"""RadiusTable (radius vs p_a on a grid, saved to .npz), Smooth with tables, ``unicr table`` and
``unicr certify --radius-table``.

No property checked here depends on the dimension, the sample count or the grid step, so they
are small (d = 4, N = 2,000, steps 0.1 to 0.5). A table and the engine calls it is compared with
use the same engine settings. Tolerances: RTOL, the Monte-Carlo engine's bisection tolerance on
lambda, and EXACT_RTOL, the exact engine's accuracy (derivations where they are used)."""
import json
import math

import numpy as np
import pytest
import torch

import unicr_fast as uc
from unicr_fast.radius import table as rt
from unicr_fast.confidence import clopper_pearson_lower, clopper_pearson_upper
from unicr_fast.radius.cache import LogitGrid
from unicr_fast.radius.table import RadiusTable, monotone_envelope

from test_cli import certify_args, data_rows, run_cli, small  # noqa: F401 (small: a fixture)
from test_smooth import Constant

NOISE = uc.noise.Laplace(0.5)
DIM, N_MC, STEP, P_MAX = 4, 2000, 0.1, 0.999
FAST = dict(search_samples=1000, particles=2, iterations=1)
RTOL = 1e-4            # certified_radius's default rtol: the bisection tolerance on lambda
#: unicr_fast.radius.exact computes lambda* to ~1e-10 relative (its closed-form checks hold to < 1e-10).
EXACT_RTOL = 1e-10


def build(norm=1, **kw):
    args = dict(step=STEP, p_max=P_MAX, num_samples=N_MC, radius_kwargs=FAST, progress=False)
    return RadiusTable.build(NOISE, norm, DIM, **(args | kw))


def engine(p_a, p_b=None, norm=1, **kw):
    return uc.certified_radius(NOISE, p_a, p_b, norm, DIM, N_MC, **(FAST | kw))


@pytest.fixture(scope="module")
def tables():
    """Monte-Carlo tables: binary in l1, l2, l_inf and multiclass in l1 (coarse p_b grid)."""
    out = {norm: build(norm, chunk=16) for norm in (1, 2, math.inf)}
    out["multi"] = build(1, multiclass=True, step_b=0.5, chunk=16)
    return out


# -- grid and lookups ---------------------------------------------------------------------------

@pytest.mark.parametrize("norm", [1, 2, math.inf], ids=["l1", "l2", "linf"])
def test_grid_points_hold_the_engine_radii(tables, norm):
    """Built in chunks of 16, the table equals one engine call over the whole grid: a radius
    does not depend on the other p_a of its call, and the table's monotone envelope is the
    suffix minimum the engine applies within a call."""
    table = tables[norm]
    grid = LogitGrid(STEP)
    assert table.p_a[0] == 0.5 and table.p_a[-1] <= P_MAX < grid.point(grid.index_down(P_MAX) + 1)
    assert np.array_equal(table.lookup(table.p_a), engine(table.p_a, norm=norm))
    assert table.radius(float(table.p_a[40])) == table.radii[40] > 0


@pytest.mark.parametrize("norm", [1, 2, math.inf], ids=["l1", "l2", "linf"])
def test_lookup_is_the_radius_of_the_grid_point_below(tables, norm):
    table = tables[norm]
    p = np.append(np.random.default_rng(1).uniform(0.5, P_MAX, 60), [0.9995, 0.99999])
    k = LogitGrid(STEP).index_down(p) - table.settings["grid"]["k_lo"]
    below = np.minimum(k, len(table.p_a) - 1)          # above the top: the top point
    assert np.all(table.p_a[below] <= p) and np.any(k > below)
    assert np.array_equal(table.lookup(p), table.radii[below])


@pytest.fixture(scope="module")
def exact_tables():
    """Tables of the exact engine (deterministic: no samples), binary l1 / l_inf and
    multiclass l1."""
    kw = dict(method="exact", p_max=P_MAX, progress=False)
    out = {norm: RadiusTable.build(NOISE, norm, DIM, step=0.2, **kw) for norm in (1, math.inf)}
    out["multi"] = RadiusTable.build(NOISE, 1, DIM, multiclass=True, step=0.25, step_b=0.5, **kw)
    return out


@pytest.mark.parametrize("norm", [1, math.inf], ids=["l1", "linf"])
def test_lookup_never_exceeds_the_engine(exact_tables, norm):
    """Why lookup(p) <= certified_radius(p): the lookup is the engine's radius at
    q = round_down(p) <= p (or less: the envelope only lowers it), and the exact engine's radius
    is the minimum over the same k-sparse directions of lambda*(u), computed from the exact law
    of L, which is non-decreasing in p_a for every u. Each computed lambda* is within EXACT_RTOL
    of the true one, so lookup(p) <= engine(p) (1 + EXACT_RTOL) / (1 - EXACT_RTOL). Above the
    top of the grid the top radius stands for q.

    (The Monte-Carlo engine is monotone in p_a only up to its sampling error: its tie term
    e^t (p_a - P_X(L < t)) counts X-side mass where the Y-side count may differ by ~1/N, so at
    N = 2,000 a radius at a higher p_a can come out ~0.2% below one at a lower p_a. Its tables
    hold its own grid radii exactly, tested above.)"""
    table = exact_tables[norm]
    p = np.random.default_rng(1).uniform(0.5, 0.99999, 30)
    exact = uc.certified_radius(NOISE, p, None, norm, DIM, method="exact")
    assert np.all(table.lookup(p) <= exact * (1 + EXACT_RTOL) / (1 - EXACT_RTOL))


def test_outside_the_grid(tables):
    table = tables[1]
    assert table.lookup([0.0, 0.3, 0.5 - 1e-12, 0.5]).tolist() == [0.0] * 4
    top = table.radii[-1]
    assert table.lookup([table.p_a[-1], P_MAX, 0.9999999, 1.0]).tolist() == [top] * 4


def test_monotone_envelope_is_the_largest_monotone_lower_bound():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 9)
    env = monotone_envelope(raw)
    assert np.all(env <= raw) and np.all(np.diff(env) >= 0)
    assert np.array_equal(monotone_envelope(env), env)
    assert np.array_equal(monotone_envelope(np.sort(raw)), np.sort(raw))
    raw2 = rng.uniform(0, 1, (6, 5))
    env2 = monotone_envelope(raw2)
    brute = [[raw2[a:, :b + 1].min() for b in range(5)] for a in range(6)]  # higher p_a, lower p_b
    assert np.array_equal(env2, np.array(brute))
    assert np.all(np.diff(env2, axis=0) >= 0) and np.all(np.diff(env2, axis=1) <= 0)


def test_stored_radii_are_monotone(tables):
    multi = tables["multi"]
    for table in (tables[1], tables[math.inf], multi):
        assert np.all(np.diff(table.radii) >= 0)
    assert np.all(np.diff(multi.radii_mc, axis=0) >= 0)
    assert np.all(np.diff(multi.radii_mc, axis=1) <= 0)


def _multiclass_queries():
    rng = np.random.default_rng(2)
    p_a = rng.uniform(0.5, 0.9999, 20)
    p_b = (1 - p_a) * rng.uniform(0, 1, 20) ** 3        # many far below 1 - p_a
    p_b[:3] = [0.0, 1e-7, 1 - p_a[2]]                   # below the p_b grid, and binary
    return p_a, p_b


def test_multiclass_lookups_are_at_least_the_binary_table(tables):
    """A multiclass lookup is max(binary radius at q_a, radius at (q_a, round_up(p_b))), and
    at grid points exactly the larger of the two stored values."""
    multi, binary = tables["multi"], tables[1]
    assert np.array_equal(multi.radii, binary.radii)   # the same engine calls
    p_a, p_b = _multiclass_queries()
    looked = multi.lookup(p_a, p_b)
    assert np.all(looked >= binary.lookup(p_a)) and np.any(looked > binary.lookup(p_a))
    valid = multi.p_b[None, :] <= 1 - multi.p_a[:, None]
    for a, b in zip(*np.nonzero(valid)):
        expect = max(multi.radii[a], multi.radii_mc[a, b])
        assert multi.radius(float(multi.p_a[a]), float(multi.p_b[b])) == expect


def test_multiclass_lookup_never_exceeds_the_engine(exact_tables):
    """As for binary lookups, with the radius also non-increasing in p_b (p_b rounded up), and
    the binary bound at q_a <= the binary radius at p_a = the multiclass one at
    (p_a, 1 - p_a) <= the one at (p_a, p_b), for the exact law on the same directions."""
    p_a, p_b = _multiclass_queries()
    looked = exact_tables["multi"].lookup(p_a, p_b)
    for a, b, r in zip(p_a, p_b, looked):
        exact = uc.certified_radius(NOISE, a, b, 1, DIM, method="exact")
        assert r <= exact * (1 + EXACT_RTOL) / (1 - EXACT_RTOL)


# -- files ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [1, "multi"])
def test_save_load_round_trip(tables, tmp_path, kind):
    table, path = tables[kind], tmp_path / "t.npz"
    table.save(path)
    back = RadiusTable.load(path)
    assert back.settings == table.settings and back.sha256 == table.sha256 and back.complete
    assert np.array_equal(back.p_a, table.p_a) and np.array_equal(back.radii, table.radii)
    if table.multiclass:
        assert np.array_equal(back.radii_mc, table.radii_mc)
        assert np.array_equal(back.p_b, table.p_b)
    p = np.linspace(0.4, 1.0, 50)
    assert np.array_equal(back.lookup(p, 0.01), table.lookup(p, 0.01))
    assert back.noise is None and back.noise_record == {"name": "laplace", "sigma": 0.5}
    assert repr(back) == repr(table) and "complete" in repr(back)


@pytest.mark.parametrize("other, words", [
    (dict(noise=uc.noise.Laplace(0.6)), ["noise", "laplace(sigma=0.5)", "laplace(sigma=0.6)"]),
    (dict(noise=uc.noise.Gaussian(0.5)), ["noise", "gaussian(sigma=0.5)"]),
    (dict(norm=2), ["norm: l1 in the table, l2"]),
    (dict(dim=5), ["dim: 4 in the table, 5"]),
    (dict(multiclass=True), ["binary table, multiclass asked for"]),
    (dict(norm="inf", dim=3), ["norm: l1 in the table, linf", "dim: 4"]),
])
def test_check_matches_says_what_differs(tables, other, words):
    table = tables[1]
    asked = dict(noise=NOISE, norm=1, dim=DIM, multiclass=False)
    table.check_matches(**asked)
    with pytest.raises(ValueError, match="does not match") as err:
        table.check_matches(**(asked | other))
    for word in words:
        assert word in str(err.value)


def _rewrite(src, dst, **change):
    """Copy the .npz ``src`` to ``dst`` with entries replaced (None: removed)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(change)
    np.savez(dst, **{k: v for k, v in arrays.items() if v is not None})


def _meta(path, **change):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    return np.array(json.dumps(meta | change))


def test_bad_files_are_named(tables, tmp_path):
    good = tmp_path / "good.npz"
    tables[1].save(good)
    radii = tables[1].radii
    with pytest.raises(FileNotFoundError, match="does not exist; build it with `unicr table"):
        RadiusTable.load(tmp_path / "missing.npz")
    cases = {
        "text.npz": ("not a radius table: it cannot be read", None),
        "plain.npz": ("without its 'meta' entry", dict(meta=None)),
        "other.npz": ("is not a unicr_fast.radius_table record", dict(meta=np.array("{}"))),
        "version.npz": ("format version 99; this unicr_fast reads version 2: rebuild it",
                        dict(meta=_meta(good, version=99))),
        "short.npz": ("corrupted radius table ('radii' has shape", dict(radii=radii[:-1])),
        "negative.npz": ("corrupted radius table", dict(radii=-radii)),
        "order.npz": ("not monotone", dict(radii=radii[::-1].copy())),
        "ints.npz": ("corrupted radius table", dict(radii=np.arange(len(radii)))),
        "grid.npz": ("p_a points are not the grid", dict(p_a=tables[1].p_a * 0.99)),
        "nometa.npz": ("corrupted", dict(meta=_meta(good, settings={"dim": 4}))),
    }
    (tmp_path / "text.npz").write_text("not a table\n")
    for name, (_, change) in cases.items():
        if change is not None:
            _rewrite(good, tmp_path / name, **change)
    np.save(tmp_path / "array.npy", radii)
    cases["array.npy"] = ("one array (.npy)", None)
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:300])
    cases["cut.npz"] = ("cannot be read as .npz", None)
    for name, (message, _) in cases.items():
        with pytest.raises(ValueError, match="'.*" + name.replace(".", r"\.") + "'") as err:
            RadiusTable.load(tmp_path / name)
        assert message in str(err.value), (name, str(err.value))
    with pytest.raises(TypeError, match="path"):
        RadiusTable.load(3)


def test_edited_tables_fail_the_integrity_check(tables, tmp_path):
    """Edits that leave a well-formed table -- its norm in the metadata, its radii scaled, an
    array added, the integrity entry itself -- would serve the radii of another table: refused."""
    good = tmp_path / "good.npz"
    tables["multi"].save(good)
    with np.load(good, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        radii, radii_mc = z["radii"], z["radii_mc"]
    assert meta["version"] == rt.VERSION == 2 and len(meta["integrity"]) == 64
    cases = {
        "norm.npz": dict(meta=_meta(good, settings=meta["settings"] | {"norm": 2.0})),
        "complete.npz": dict(meta=_meta(good, complete=False)),
        "scaled.npz": dict(radii=radii * 10),
        "scaled_mc.npz": dict(radii_mc=radii_mc * 10),
        "extra.npz": dict(extra=np.zeros(3)),
        "hash.npz": dict(meta=_meta(good, integrity="0" * 64)),
        "nohash.npz": dict(meta=np.array(json.dumps(
            {k: v for k, v in meta.items() if k != "integrity"}))),
    }
    for name, change in cases.items():
        _rewrite(good, tmp_path / name, **change)
        with pytest.raises(ValueError, match="'.*" + name.replace(".", r"\.") +
                           "' fails its integrity check.*rebuild it with `unicr table`"):
            RadiusTable.load(tmp_path / name, finished=False)
    # a table of the previous format (no integrity hash): refused, with the way out
    _rewrite(good, tmp_path / "v1.npz", meta=_meta(good, version=1))
    with pytest.raises(ValueError, match="format version 1; this unicr_fast reads version 2: "
                                         "rebuild it with `unicr table`"):
        RadiusTable.load(tmp_path / "v1.npz")
    assert RadiusTable.load(good).sha256 == tables["multi"].sha256


def test_custom_noise_tables_stay_in_memory(tmp_path):
    lap = uc.noise.Laplace(0.5)
    custom = uc.noise.Custom(lap.log_pdf, lambda s, g, d: lap.sample(s, g, d, torch.float64))
    table = RadiusTable.build(custom, 1, 2, step=0.5, p_max=0.95, num_samples=500,
                              radius_kwargs=FAST, device="cpu", progress=False)
    table.check_matches(custom, 1, 2, False)
    with pytest.raises(ValueError, match="Custom noise matches only itself"):
        table.check_matches(uc.noise.Custom(lap.log_pdf, lap.sample), 1, 2, False)
    with pytest.raises(ValueError, match="Custom noise has no name"):
        table.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="Custom noise has no name"):
        RadiusTable.build(custom, 1, 2, path=tmp_path / "c.npz", progress=False)
    assert not (tmp_path / "c.npz").exists()


# -- building -------------------------------------------------------------------------------------

class Interrupt(Exception):
    pass


def test_interrupted_build_resumes_to_the_same_table(tmp_path, monkeypatch):
    """Monte Carlo (one engine call per chunk): interrupt a multiclass build at its 4th engine call (the checkpoint holds what the first
    3 computed) and resume it: the same table as an uninterrupted build, from the calls left."""
    kw = dict(multiclass=True, step_b=0.5, chunk=16, method="mc")
    calls, limit, engine_fn = [], [None], rt.certified_radius

    def counted(*args, **kwargs):
        if len(calls) == limit[0]:
            raise Interrupt
        calls.append(args[1])
        return engine_fn(*args, **kwargs)

    monkeypatch.setattr(rt, "certified_radius", counted)
    whole = build(**kw, path=tmp_path / "whole.npz")
    total = len(calls)
    path = tmp_path / "cut.npz"
    calls.clear()
    limit[0] = 3
    with pytest.raises(Interrupt):
        build(**kw, path=path)
    partial = RadiusTable.load(path, finished=False)
    assert not partial.complete and 0 < np.isfinite(partial.radii).sum() < len(partial.radii)
    with pytest.raises(ValueError, match="unfinished radius table"):
        RadiusTable.load(path)
    edited = tmp_path / "edited.npz"   # a checkpoint edited meanwhile is not resumed
    _rewrite(path, edited, radii=partial.radii * 2)
    with pytest.raises(ValueError, match="integrity check"):
        build(**kw, path=edited)
    calls.clear()
    limit[0] = None
    resumed = build(**kw, path=path)
    assert len(calls) == total - 3
    assert resumed.sha256 == whole.sha256 == RadiusTable.load(path).sha256
    assert np.array_equal(resumed.radii_mc, whole.radii_mc)
    calls.clear()
    assert build(**kw, path=path).sha256 == whole.sha256 and calls == []   # done: no work


def test_interrupted_exact_build_resumes_to_the_same_table(tmp_path, monkeypatch):
    """The exact engine builds in two sweeps (the binary column, then every multiclass entry):
    interrupted in the second, the checkpoint holds the first, and the resume runs only the
    second and ends with the same table."""
    import unicr_fast.radius.exact.curve as ec
    kw = dict(multiclass=True, step_b=0.5, method="exact")
    whole = build(**kw, path=tmp_path / "whole.npz")
    sweep, calls, limit = ec.exact_radius_curve, [], [1]

    def counted(*args, **kwargs):
        if len(calls) == limit[0]:
            raise Interrupt
        calls.append(np.ndim(args[2]))        # p_b: None (binary, ndim 0) or an array
        return sweep(*args, **kwargs)

    monkeypatch.setattr(ec, "exact_radius_curve", counted)
    path = tmp_path / "cut.npz"
    with pytest.raises(Interrupt):
        build(**kw, path=path)
    partial = RadiusTable.load(path, finished=False)
    assert np.isfinite(partial.radii).all() and np.isnan(partial.radii_mc).all()
    calls.clear()
    limit[0] = None
    resumed = build(**kw, path=path)
    assert calls == [1]                          # only the multiclass sweep ran
    assert resumed.sha256 == whole.sha256
    assert np.array_equal(resumed.radii_mc, whole.radii_mc)


def test_resume_refuses_other_settings(tmp_path):
    path = tmp_path / "t.npz"
    build(path=path, step=0.5)
    with pytest.raises(ValueError, match="other settings .*engine.num_samples: 2000 there, "
                                         "3000 now.*another path"):
        build(path=path, step=0.5, num_samples=3000)
    with pytest.raises(ValueError, match="grid.step: 0.5 there, 0.25 now"):
        build(path=path, step=0.25)


def test_p_max_from_n_and_alpha():
    assert rt.reachable_p_max(200, 0.001) == pytest.approx(0.001 ** (1 / 200), rel=1e-12)
    assert rt.reachable_p_max(200, 0.001, True) == clopper_pearson_lower(200, 200, 0.0005)
    table = build(step=0.25, p_max=None, n=200, alpha=0.001)
    next_point = LogitGrid(0.25).point(table.settings["grid"]["k_hi"] + 1)
    assert table.p_a[-1] <= 0.001 ** (1 / 200) < next_point
    multi = build(step=0.25, p_max=None, n=200, alpha=0.001, multiclass=True, step_b=1.0)
    # The lowest p_b point lies at or below the smallest upper bound a run can produce.
    assert multi.p_b[0] <= clopper_pearson_upper(0, 200, 0.0005) and multi.p_b[-1] == 0.5


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(p_min=0.4), ValueError, "p_min must be >= 0.5 for a binary table"),
    (dict(p_max=0.52), ValueError, "at least one step"),
    (dict(p_max=0.9, n=100), ValueError, "give p_max or (n, alpha), not both"),
    (dict(p_max=1.0), ValueError, "p_max must lie in (0, 1)"),
    (dict(method="fast"), ValueError, "method must be one of"),
    (dict(radius_kwargs={"seed": 1}), ValueError, "must not set ['seed']"),
    (dict(radius_kwargs={"dtype": torch.float64}), TypeError, "JSON"),
    (dict(step=0), ValueError, "step must be finite and > 0"),
    (dict(chunk=0), ValueError, "chunk must be >= 1"),
    (dict(multiclass=1), TypeError, "multiclass must be a bool"),
    (dict(norm=0), ValueError, "norm must be > 0"),
])
def test_bad_build_arguments(kwargs, error, words):
    norm = kwargs.pop("norm", 1)
    with pytest.raises(error) as err:
        build(norm, **kwargs)
    assert words in str(err.value)
    with pytest.raises(TypeError, match="noise must be"):
        RadiusTable.build("laplace", 1, 4)


def test_bad_lookups(tables):
    table = tables[1]
    for bad, error in [(math.nan, ValueError), (1.5, ValueError), (-0.1, ValueError),
                       ("0.9", TypeError)]:
        with pytest.raises(error, match="p_a"):
            table.lookup(bad)
    with pytest.raises(ValueError, match="p_b"):
        table.lookup(0.9, 2.0)
    with pytest.raises(TypeError, match="use lookup"):
        table.radius([0.9, 0.8])


# -- Smooth -----------------------------------------------------------------------------------

def test_smooth_answers_from_its_tables(tables, tmp_path):
    """A constant model hits every draw: p_a = alpha^(1/n) (Clopper–Pearson), so the radius is
    the table's at that p_a; a norm without a table falls back to the cache."""
    n, alpha = 500, 0.01
    p_a = clopper_pearson_lower(n, n, alpha)
    tables[math.inf].save(tmp_path / "inf.npz")
    smooth = uc.Smooth(Constant(3, 1), 3, noise=NOISE, norm=1, radius_samples=N_MC,
                       radius_kwargs=FAST, radius_table=[tables[1], tmp_path / "inf.npz"])
    x = torch.zeros(DIM)
    assert smooth.certify(x, 50, n, alpha, 250) == (1, tables[1].radius(p_a))
    label, radii = smooth.certify_norms(x, 50, n, alpha, 250, norms=(1, 2, "inf"))
    assert radii[1] == tables[1].radius(p_a) and radii["inf"] == tables[math.inf].radius(p_a)
    assert radii[2] == smooth.radius_cache.radius(p_a, None, 2, DIM)
    assert smooth.radius_cache.misses == 1                 # only l2 went to the engine
    # Gaussian: a table given explicitly wins over the closed form.
    gauss = uc.noise.Gaussian(0.5)
    g_table = RadiusTable.build(gauss, 2, DIM, step=0.2, p_max=P_MAX, num_samples=N_MC,
                                radius_kwargs=FAST, progress=False)
    g_smooth = uc.Smooth(Constant(3, 1), 3, sigma=0.5, radius_table=g_table)
    assert g_smooth.certify(x, 50, n, alpha, 250)[1] == g_table.radius(p_a)


def test_smooth_multiclass_table(tables):
    n, alpha = 500, 0.01
    smooth = uc.Smooth(Constant(3, 1), 3, noise=NOISE, norm=1, multiclass=True)
    smooth.use_radius_table(tables["multi"])
    p_a = clopper_pearson_lower(n, n, alpha / 2)
    p_b = min(clopper_pearson_upper(0, n, alpha / 2), 1 - p_a)
    assert smooth.certify(torch.zeros(DIM), 50, n, alpha, 250) == (
        1, tables["multi"].radius(p_a, p_b))


def test_smooth_refuses_tables_that_do_not_fit(tables):
    with pytest.raises(ValueError, match="noise: laplace"):
        uc.Smooth(Constant(3, 1), 3, noise=uc.noise.Laplace(0.7), radius_table=tables[1])
    with pytest.raises(ValueError, match="multiclass table, binary asked for"):
        uc.Smooth(Constant(3, 1), 3, noise=NOISE, radius_table=tables["multi"])
    with pytest.raises(TypeError, match="RadiusTable or a path"):
        uc.Smooth(Constant(3, 1), 3, noise=NOISE, radius_table=3)


# -- command line -----------------------------------------------------------------------------

def table_args(out, *extra):
    return ["table", "--noise", "gaussian", "--sigma", "0.25", "--norm", "2", "--dim", "64",
            "--out", out, "--samples", N_MC, "--n", "200", "--step", "0.05", "--no-progress",
            *extra]


def test_table_then_certify_with_it(small, tmp_path, capsys):
    from unicr_fast.cli import point_seed
    from unicr_fast.models import load_checkpoint
    path, out = tmp_path / "g.npz", tmp_path / "res.tsv"
    code, stdout, err = run_cli(table_args(path), capsys)
    assert code == 0, err
    table = RadiusTable.load(path)
    assert "complete" in stdout and table.sha256 in stdout
    code, _, err = run_cli(certify_args(small, out, "--radius-table", path), capsys)
    assert code == 0, err
    rows = data_rows(out)                       # radii written with 6 significant digits
    assert len(rows) == 6 and any(float(r[3]) > 0 for r in rows)
    assert {r[3] for r in rows} <= {f"{v:.6g}" for v in table.radii} | {"0"}
    model, _ = load_checkpoint(small["model"])
    smooth = uc.Smooth(model, 10, sigma=0.25, radius_table=path)
    for i in (0, 5):
        smooth.seed = point_seed(0, i)
        pred, radius = smooth.certify(small["x"][i], 20, 200, 0.001, 100)
        assert rows[i][2:4] == [str(pred), f"{radius:.6g}"]
    with open(str(out) + ".params.json") as f:
        assert json.load(f)["radius_table_sha256"] == table.sha256


def test_certify_builds_a_missing_table_and_refuses_another_on_resume(small, tmp_path, capsys):
    path, out = tmp_path / "built.npz", tmp_path / "res.tsv"
    code, _, err = run_cli(certify_args(small, out, "--radius-table", path, "--max", "2",
                                        "--radius-samples", N_MC), capsys)
    assert code == 0, err
    assert "building it for this run" in err
    table = RadiusTable.load(path)
    table.check_matches(uc.noise.Gaussian(0.25), 2, 64, False)
    assert table.engine["num_samples"] == N_MC and table.p_a[-1] <= 0.001 ** (1 / 200)
    other = tmp_path / "other.npz"
    assert run_cli(table_args(other, "--seed", "1"), capsys)[0] == 0
    code, _, err = run_cli(certify_args(small, out, "--radius-table", other, "--radius-samples",
                                        N_MC), capsys)
    assert code == 2 and "radius_table_sha256" in err and "other settings" in err
    assert len(data_rows(out)) == 2
    code, _, err = run_cli(certify_args(small, out, "--radius-table", path, "--radius-samples",
                                        N_MC), capsys)
    assert code == 0 and "resumed after 2 rows" in err    # the same table: resumed
    assert len(data_rows(out)) == 6


def test_certify_refuses_a_table_of_another_run(small, tmp_path, capsys):
    path = tmp_path / "g.npz"
    assert run_cli(table_args(path), capsys)[0] == 0
    argv = certify_args(small, tmp_path / "res.tsv", "--radius-table", path)
    argv[argv.index("--norm") + 1] = "1"
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "--radius-table: the radius table does not match: norm: l2" in err
    (tmp_path / "junk.npz").write_text("junk")
    code, _, err = run_cli(certify_args(small, tmp_path / "r2.tsv", "--radius-table",
                                        tmp_path / "junk.npz"), capsys)
    assert code == 2 and "is not a radius table" in err
    code, _, err = run_cli(table_args(path, "--p-max", "0.9"), capsys)
    assert code == 2 and "not both" in err
    low = table_args(tmp_path / "low.npz")
    low[low.index("--n") + 1] = "50"                   # tops out below what n = 200 reaches
    assert run_cli(low, capsys)[0] == 0
    code, _, err = run_cli(certify_args(small, tmp_path / "r3.tsv", "--radius-table",
                                        tmp_path / "low.npz", "--max", "1"), capsys)
    assert code == 0 and "warning: --radius-table tops out at p_a" in err
