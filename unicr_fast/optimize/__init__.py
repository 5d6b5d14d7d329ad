"""Noise optimisation (the UniCR paper's C-OPT and I-OPT).

**C-OPT** (``copt``): one noise for a whole classifier. For every setting of a grid over a noise
family's parameters (default: general_normal, sigma x beta) the classifier is trained (or
fine-tuned) with that noise by a user-supplied ``train_fn(noise) -> model``, a *validation* split
is certified, and the setting is scored by the robustness score (area under the certified-accuracy
curve = mean of correct x radius, ``curve.robustness_score``). The best setting is the argmax of
the score over the grid; the test split is never looked at. ``digits_split`` and
``digits_train_fn`` are the ready pieces for the digits demo MLP.

**I-OPT** (``InputOptimizer``, ``iopt_certify``): one noise per input. Starting from a Smooth's
noise, a hill climb over the noise parameters (sigma on a multiplicative lattice, and beta on an
additive one for general_normal) maximises the certified radius of the class predicted at the
start, then the radius is certified afresh at the chosen setting. See ``InputOptimizer`` for why
the final certificate keeps its alpha-level guarantee although the setting was chosen by looking
at the input.

**Radii for every sigma at the price of one** (``NoiseRadii``): every family of the catalogue is a
scale family in sigma (noise(sigma) = sigma x noise(1) in law), and the certification condition
(docs/theory.md §3) is invariant under scaling the noise and the shift together, so
R(sigma, p_a, p_b) = sigma x R(1, p_a, p_b) exactly. The radius engine therefore runs once per
*shape* (family and non-sigma parameters: one beta), on unit-sigma noise, memoised by a
``RadiusCache``; Gaussian noise (and general_normal with beta = 2, the same law) uses the closed
form. This is what makes a grid over sigma, or a climb along sigma, cheap. (The engine's own
numerics scale too: its brackets, caps and tolerances are relative to sigma.)
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import curve as curve_mod
from .. import outfiles
from .._validation import check_int, check_norm, check_positive, check_probability_open
from ..confidence import clopper_pearson_lower, clopper_pearson_upper
from ..noise import FAMILIES, GeneralNormal, Gaussian, Noise, make
from ..radius.cache import RadiusCache, certifying_kwargs
from ..radius.closed_forms import gaussian_radius
from ..smooth import check_input_tensor

ABSTAIN = -1

__all__ = [
    "NoiseRadii", "noise_grid", "noise_tag", "score_setting", "copt", "CoptRow", "CoptResult",
    "read_copt_tsv", "plot_copt", "digits_split", "digits_train_fn", "InputOptimizer",
    "IOptResult", "iopt_certify",
]


# == radii for any sigma ========================================================================
def _is_gaussian(noise: Noise) -> bool:
    return isinstance(noise, Gaussian) or (isinstance(noise, GeneralNormal) and noise.beta == 2.0)


def _shape_params(noise: Noise) -> Dict[str, float]:
    return {k: float(v) for k, v in noise.params.items() if k != "sigma"}


def _with_params(noise: Noise, **changes) -> Noise:
    """The same family with some parameters changed (sigma, beta, ...)."""
    return make(noise.name, **{**noise.params, **changes})


class NoiseRadii:
    """Certified radii of any noise of the catalogue, one ``RadiusCache`` per noise *shape*.

    ``radius(noise, p_a, p_b, norm, dim)`` = sigma x (radius of the unit-sigma noise of the same
    shape), see the module docstring. Gaussian noise (and general_normal with beta = 2) uses the
    closed form. A noise outside the catalogue (``Custom``) gets a cache of its own (no scaling).
    ``num_samples``, ``seed``, ``device``, ``radius_kwargs`` and ``step`` go to every
    ``RadiusCache`` (rounding p_a down and p_b up onto a logit grid of step ``step``: never
    over-states a radius). ``bind(noise)`` gives an object with ``radius(p_a, p_b, norm, dim)``
    that can stand in for ``Smooth.radius_cache``.
    """

    def __init__(self, num_samples: int = 20_000, seed: int = 0, device="auto",
                 radius_kwargs: Optional[dict] = None, step: float = 0.01):
        self.num_samples = check_int(num_samples, "num_samples", 1)
        self.seed = check_int(seed, "seed", 0)
        self.device = device
        self.radius_kwargs = dict(radius_kwargs or {})
        self.step = check_positive(step, "step")
        self._caches: Dict[object, RadiusCache] = {}
        # Fail now, not at the first lookup, on a bad radius_kwargs (RadiusCache checks it).
        RadiusCache(Gaussian(1.0), step=self.step, num_samples=self.num_samples, seed=self.seed,
                    device=device, radius_kwargs=self.radius_kwargs)

    def _unit(self, noise: Noise) -> Tuple[RadiusCache, float]:
        """(cache of the unit-sigma noise of this shape, sigma) -- or (own cache, 1.0)."""
        # a catalogue family given by sigma (radial noise may be given by its scale a instead)
        scalable = (noise.name in FAMILIES and type(noise) is FAMILIES[noise.name]
                    and "sigma" in noise.params)
        key = (noise.name, tuple(sorted(_shape_params(noise).items()))) if scalable else noise
        cache = self._caches.get(key)
        if cache is None:
            unit = _with_params(noise, sigma=1.0) if scalable else noise
            cache = self._caches[key] = RadiusCache(
                unit, step=self.step, num_samples=self.num_samples, seed=self.seed,
                device=self.device, radius_kwargs=certifying_kwargs(unit, self.radius_kwargs))
        return cache, (noise.sigma if scalable else 1.0)

    def radii(self, noise: Noise, p_a, p_b: Optional[float] = None, norm=2,
              dim: int = None) -> np.ndarray:
        """Radii for an array of p_a (one p_b; ``None`` = binary); one engine call for all the
        grid points not yet computed."""
        if not isinstance(noise, Noise):
            raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
        if dim is None:
            raise TypeError("dim is required: the input dimension d")
        p, dim = check_norm(norm), check_int(dim, "dim", 1)
        pa = np.asarray(p_a, dtype=np.float64)
        if _is_gaussian(noise):
            flat = [gaussian_radius(noise.sigma, float(a), p_b, p, dim) if a > 0.5 and
                    (p_b is None or a > p_b) else 0.0 for a in pa.reshape(-1)]
            return np.array(flat).reshape(pa.shape)
        cache, scale = self._unit(noise)
        return scale * cache.radii(pa, p_b, p, dim)

    def radius(self, noise: Noise, p_a: float, p_b: Optional[float] = None, norm=2,
               dim: int = None) -> float:
        return float(self.radii(noise, [p_a], p_b, norm, dim)[0])

    def bind(self, noise: Noise) -> "_BoundRadii":
        return _BoundRadii(self, noise)

    @property
    def misses(self) -> int:
        """Grid points computed by the engine so far (all shapes)."""
        return sum(c.misses for c in self._caches.values())

    @property
    def hits(self) -> int:
        return sum(c.hits for c in self._caches.values())

    def __len__(self) -> int:
        return len(self._caches)


class _BoundRadii:
    def __init__(self, radii: NoiseRadii, noise: Noise):
        self.radii_, self.noise = radii, noise

    def radius(self, p_a, p_b=None, norm=2, dim=None) -> float:
        return self.radii_.radius(self.noise, p_a, p_b, norm, dim)

    @property
    def failure(self) -> float:
        """Probability that these radii overstate (radius_cache.radius_failure)."""
        return self.radii_._unit(self.noise)[0].failure


# == shared pieces ==============================================================================
def _point_seed(seed: int, idx: int) -> int:
    """Noise seed of input ``idx`` (the formula of ``cli.point_seed``)."""
    return int(np.random.SeedSequence([seed, idx]).generate_state(1)[0])


def _model_device(model: torch.nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def _count(model, num_classes: int, x: torch.Tensor, num: int, batch_size: int,
           draw: Callable[[int], torch.Tensor]) -> np.ndarray:
    """Class counts of ``model`` on ``num`` noisy copies x + draw(size), in batches."""
    model.eval()
    counts = torch.zeros(num_classes, dtype=torch.long, device=x.device)
    bad = torch.zeros((), dtype=torch.long, device=x.device)   # as Smooth._counts: NaN/inf rows
    for start in range(0, num, batch_size):
        size = min(batch_size, num - start)
        out = model(draw(size).to(device=x.device, dtype=x.dtype).add_(x))
        if not torch.is_tensor(out) or tuple(out.shape) != (size, num_classes):
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"model output must have shape (batch, num_classes) = "
                             f"({size}, {num_classes}), got {got}")
        bad += (~torch.isfinite(out)).any(dim=1).sum()
        counts += torch.bincount(out.argmax(dim=1), minlength=num_classes)
    if int(bad):
        raise ValueError(f"model returned non-finite outputs (NaN/inf) for {int(bad)} of {num} "
                         f"noisy inputs; their argmax is no prediction, so nothing is counted: "
                         f"fix the model (or its input scaling) to give finite logits")
    return counts.cpu().numpy()


def _bounds(counts: np.ndarray, label: int, num: int, alpha: float, multiclass: bool):
    """(p_a, p_b) of ``label`` from ``num`` draws, exactly as ``Smooth.certify``: binary p_a at
    alpha (p_b None); multiclass p_a and the runner-up's p_b at alpha / 2 each."""
    n_a = int(counts[label])
    if not multiclass:
        return clopper_pearson_lower(n_a, num, alpha), None
    p_a = clopper_pearson_lower(n_a, num, alpha / 2)
    n_b = int(np.delete(counts, label).max())
    return p_a, min(clopper_pearson_upper(n_b, num, alpha / 2), 1.0 - p_a)


def _certifies(p_a: float, p_b: Optional[float]) -> bool:
    """Smooth's rule: binary abstains below p_a = 1/2, multiclass unless p_a > p_b."""
    return p_a > p_b if p_b is not None else p_a >= 0.5


def _draw_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _check_noise(noise, name: str) -> Noise:
    if not isinstance(noise, Noise):
        raise TypeError(f"{name} must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
    return noise


def noise_tag(noise: Noise) -> str:
    """A file-name-safe name of a noise setting, e.g. ``general_normal_sigma0.25_beta1.5``."""
    return "_".join([noise.name] + [f"{k}{v:g}" for k, v in noise.params.items()])


# == C-OPT ======================================================================================
def noise_grid(family: str = "general_normal", sigma: Sequence[float] = (0.25, 0.5),
               beta: Optional[Sequence[float]] = (1.0, 1.5, 2.0), *,
               params: Optional[dict] = None, **fixed) -> List[Noise]:
    """The settings of a grid: every (sigma, beta) of general_normal (sigma-major order), or every
    sigma of another family with its other parameters ``fixed`` (give ``beta=None`` there).
    ``params``: fixed parameters as a dict, for names a keyword cannot carry here -- radial
    noise's own ``beta``, or a fixed general_normal ``beta`` (with ``beta=None``)."""
    fixed = {**fixed, **dict(params or {})}
    if not isinstance(family, str):
        raise TypeError(f"family must be a string, got {type(family).__name__}")
    sigmas = _float_list(sigma, "sigma")
    betas = None if beta is None else _float_list(beta, "beta")
    key = family.strip().lower().replace("-", "_")
    if betas is not None and key != "general_normal":
        raise ValueError(f"beta is a parameter of general_normal only; for family '{family}' "
                         f"give beta=None (and its own parameters as keywords)")
    if key == "general_normal" and betas is None and "beta" not in fixed:
        raise ValueError("general_normal needs beta: give beta=[...] (or a fixed beta=...)")
    out = []
    for s in sigmas:
        for b in (betas if betas is not None else [None]):
            params = dict(fixed, sigma=s) if b is None else dict(fixed, sigma=s, beta=b)
            out.append(make(family, **params))
    return out


def _float_list(values, name: str) -> List[float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    values = [check_positive(v, name) for v in values]
    if not values:
        raise ValueError(f"{name} must not be empty")
    return values


def score_setting(model: torch.nn.Module, noise: Noise, x: torch.Tensor, y: torch.Tensor, *,
                  norm=2, n0: int = 100, n: int = 1000, alpha: float = 0.001,
                  batch_size: int = 1000, multiclass: bool = False, seed: int = 0,
                  radii: Optional[NoiseRadii] = None, num_classes: Optional[int] = None,
                  progress: bool = False, name: str = "") -> curve_mod.CertifyResult:
    """Certify every row of ``x`` with ``Smooth(model, noise)`` (Cohen semantics, input i drawing
    from the seed ``cli.point_seed(seed, i)``) and return the rows as a ``CertifyResult``; its
    ``curve.robustness_score`` is the setting's score. Binary radii of all inputs are looked up in
    one batched call of ``radii`` (a ``NoiseRadii``; default: a fresh one)."""
    from tqdm.auto import tqdm

    from ..smooth import Smooth

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_noise(noise, "noise")
    x, y = _check_xy(x, y)
    radii = NoiseRadii() if radii is None else radii
    if not isinstance(radii, NoiseRadii):
        raise TypeError(f"radii must be a NoiseRadii, got {type(radii).__name__}")
    dev = _model_device(model)
    if num_classes is None:
        with torch.no_grad():
            num_classes = int(model.eval()(x[:1].to(dev)).shape[-1])
    smooth = Smooth(model, num_classes, noise=noise, norm=norm, multiclass=multiclass, seed=seed)
    smooth.radius_cache = radii.bind(noise)
    labels, p_as, p_bs, seconds = [], [], [], []
    for i in tqdm(range(len(x)), desc=name or noise_tag(noise), unit="input", leave=False,
                  file=sys.stderr, disable=not progress, dynamic_ncols=True):
        t0 = time.perf_counter()
        smooth.seed = _point_seed(seed, i)
        label, p_a, p_b, _ = smooth.probability_bounds(x[i].to(dev), n0, n, alpha, batch_size)
        labels.append(label)
        p_as.append(p_a)
        p_bs.append(p_b)
        seconds.append(time.perf_counter() - t0)
    dim = x[0].numel()
    t0 = time.perf_counter()
    radius = np.zeros(len(x))
    ok = np.array([lab != Smooth.ABSTAIN for lab in labels], dtype=bool)
    if ok.any() and not multiclass:
        radius[ok] = radii.radii(noise, np.array(p_as)[ok], None, smooth.norm, dim)
    else:
        for i in np.nonzero(ok)[0]:
            radius[i] = radii.radius(noise, p_as[i], p_bs[i], smooth.norm, dim)
    # The batched radius time is shared out evenly over the inputs.
    per = (time.perf_counter() - t0) / max(1, len(x))
    labels = np.array(labels, dtype=np.int64)
    y_np = y.numpy().astype(np.int64)
    correct = (labels == y_np).astype(np.int64)
    return curve_mod.CertifyResult(name or noise_tag(noise), np.arange(len(x), dtype=np.int64),
                                   y_np, labels, radius * ok, correct,
                                   np.array(seconds) + per)


def _check_xy(x, y):
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor (N, ...), got "
                        f"{type(x).__name__ if not torch.is_tensor(x) else x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1 inputs, got {tuple(x.shape)}")
    if not torch.is_tensor(y) or y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"y must be an integer torch.Tensor of labels, got "
                        f"{type(y).__name__ if not torch.is_tensor(y) else y.dtype}")
    if tuple(y.shape) != (len(x),):
        raise ValueError(f"y must have shape (N,) = ({len(x)},), got {tuple(y.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x must be finite (no NaN or inf)")
    return x, y.cpu()


@dataclass
class CoptRow:
    """One scored setting."""
    noise: Noise
    score: float        # robustness score: mean of correct x radius on the validation points
    accuracy: float     # smoothed (certified at radius 0) accuracy
    abstain: int
    points: int
    seconds: float      # training + certification
    result: Optional[curve_mod.CertifyResult] = None   # None for rows read back from a TSV


@dataclass
class CoptResult:
    rows: List[CoptRow]
    start: CoptRow
    best: CoptRow
    radii: NoiseRadii
    out: Optional[str] = None
    resumed: int = 0    # rows read back from ``out`` (not recomputed)

    def table_tsv(self) -> str:
        return _copt_tsv([r.noise for r in self.rows], self.rows)


_COPT_STATS = ("score", "accuracy", "abstain", "points", "seconds")


def _param_columns(noises: Sequence[Noise]) -> List[str]:
    names = ["sigma"]
    for nz in noises:
        names += [k for k in nz.params if k not in names]
    return names


def _copt_header(noises) -> str:
    return "\t".join(["family", *_param_columns(noises), *_COPT_STATS]) + "\n"


def _copt_line(row: CoptRow, columns: Sequence[str]) -> str:
    params = [repr(float(row.noise.params[k])) if k in row.noise.params else "-" for k in columns]
    return "\t".join([row.noise.name, *params, repr(float(row.score)), repr(float(row.accuracy)),
                      str(row.abstain), str(row.points), f"{row.seconds:.3f}"]) + "\n"


def _copt_tsv(noises, rows) -> str:
    cols = _param_columns(noises)
    return _copt_header(noises) + "".join(_copt_line(r, cols) for r in rows)


def read_copt_tsv(path) -> List[CoptRow]:
    """The rows of a C-OPT table (complete lines only; an unfinished last line is ignored)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"C-OPT table '{path}' does not exist")
    with open(path, "r", encoding="utf-8", newline="") as f:
        rows, _ = _parse_copt(f.read(), path)
    return rows


def _copt_row_problem(row: CoptRow, earlier: Sequence[CoptRow]) -> Optional[str]:
    """Why a parsed C-OPT row cannot be a scored setting (None: it can)."""
    if any(_same_setting(row.noise, r.noise) for r in earlier):
        return f"{noise_tag(row.noise)} is scored on an earlier line already"
    if not (math.isfinite(row.score) and row.score >= 0):
        return f"score {row.score} is not a finite number >= 0"
    if not 0 <= row.accuracy <= 1:
        return f"accuracy {row.accuracy} is not in [0, 1]"
    if not 0 <= row.abstain <= row.points or row.points < 1:
        return f"abstain {row.abstain} of points {row.points} (need 0 <= abstain <= points, >= 1)"
    if not (math.isfinite(row.seconds) and row.seconds >= 0):
        return f"seconds {row.seconds} is not a duration >= 0"
    return None


def _parse_copt(text: str, path: str):
    """(rows, characters spanned by the header and the complete rows). A line that is not a
    scored setting (``_copt_row_problem``) raises ValueError naming it."""
    lines = text.split("\n")
    tail = lines.pop()
    if not lines:
        return [], 0
    head = lines[0].split("\t")
    if len(head) < 2 + len(_COPT_STATS) or head[0] != "family" or \
            tuple(head[-len(_COPT_STATS):]) != _COPT_STATS:
        raise ValueError(f"'{path}' is not a C-OPT table (header '{lines[0][:80]}'; expected "
                         f"'family, <parameters>, {', '.join(_COPT_STATS)}')")
    params = head[1:-len(_COPT_STATS)]
    rows = []
    for num, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        try:
            if len(fields) != len(head):
                raise ValueError(f"{len(fields)} fields, expected {len(head)}")
            kw = {k: float(v) for k, v in zip(params, fields[1:1 + len(params)]) if v != "-"}
            stats = fields[1 + len(params):]
            noise = make(fields[0], **kw)
            row = CoptRow(noise, float(stats[0]), float(stats[1]), int(stats[2]), int(stats[3]),
                          float(stats[4]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'{path}' line {num} is not a C-OPT row ({exc})") from None
        problem = _copt_row_problem(row, rows)
        if problem:
            raise ValueError(f"'{path}' line {num} is not a C-OPT result: {problem}")
        rows.append(row)
    return rows, len(text) - len(tail)


def _open_resumable(out: str, header: str, settings: Dict, points: int, force_resume: bool):
    """Open ``out`` for appending with an exclusive lock; return (handle, rows already there).
    An unfinished last line is cut; other settings than the recorded ones, a missing or
    unreadable record (unless ``force_resume``) and rows not scored on ``points`` validation
    points raise ValueError."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fh = open(out, "a+b")
    try:
        _lock(fh, out)
        fh.seek(0)
        raw = fh.read()
        try:
            text = raw.decode("utf-8")
            if "\n" not in text and not header.startswith(text):
                raise ValueError("its first line is not a C-OPT header")
            rows, span = ([], 0) if "\n" not in text else _parse_copt(text, out)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"out '{out}' exists and is not a C-OPT table that can be resumed "
                             f"({exc}); choose another out or delete the file") from None
        if rows:
            _check_params(out, settings, force_resume)
            num = next((k for k, r in enumerate(rows, start=2) if r.points != points), None)
            if num is not None:
                raise ValueError(f"out '{out}' line {num} was scored on {rows[num - 2].points} "
                                 f"validation points, this run on {points}: not a row of this "
                                 f"run; delete that line (its setting is scored again) or "
                                 f"choose another out")
            if text.split("\n", 1)[0] + "\n" != header:
                raise ValueError(f"out '{out}' has the columns '{text.split(chr(10), 1)[0]}' "
                                 f"but this grid needs '{header.rstrip()}'; choose another out")
            if span < len(raw):
                fh.truncate(len(text[:span].encode("utf-8")))
        else:   # empty, header only, or killed while writing the header: start afresh
            fh.truncate(0)
            outfiles.append_line(fh, header)
        fh.seek(0, os.SEEK_END)
        outfiles.write_settings(out, settings)
        return fh, rows
    except BaseException:
        fh.close()
        raise


def _lock(fh, out: str) -> None:
    if not outfiles.try_lock(fh):
        raise ValueError(f"another process is writing '{out}'; wait for it or choose another "
                         f"out")


def _check_params(out: str, settings: Dict, force_resume: bool) -> None:
    diff = outfiles.settings_differences(out, settings, force=force_resume,
                                         flag="force_resume=True (unicr copt --force-resume)")
    if diff:
        raise ValueError(f"out '{out}' holds scores of a run with other settings "
                         f"({'; '.join(diff)}); rerun with the same settings to resume, or "
                         f"choose another out")


def _same_setting(a: Noise, b: Noise) -> bool:
    if a.name != b.name or set(a.params) != set(b.params):
        return False
    return all(math.isclose(float(a.params[k]), float(b.params[k]), rel_tol=1e-12, abs_tol=0)
               for k in a.params)


def copt(train_fn: Callable[[Noise], torch.nn.Module], x_val: torch.Tensor, y_val: torch.Tensor,
         noises: Optional[Sequence[Noise]] = None, *, start: Optional[Noise] = None, norm=2,
         n0: int = 100, n: int = 1000, alpha: float = 0.001, batch_size: int = 1000,
         multiclass: bool = False, seed: int = 0, radii: Optional[NoiseRadii] = None,
         radius_samples: int = 20_000, radius_kwargs: Optional[dict] = None,
         cache_step: float = 0.01, num_classes: Optional[int] = None, out: Optional[str] = None,
         certify_dir: Optional[str] = None, settings: Optional[Dict] = None,
         on_model: Optional[Callable[[Noise, torch.nn.Module], None]] = None,
         progress: bool = True, force_resume: bool = False) -> CoptResult:
    """C-OPT: train with every noise in ``noises`` (default ``noise_grid()``), score each on the
    validation split (x_val, y_val) by the robustness score, return all rows and the best.

    ``train_fn(noise)`` returns the classifier trained (or fine-tuned, e.g. a copy of a
    pre-trained model given a few epochs) with that noise. Certification as in ``score_setting``
    (Cohen's n0 / n, alpha; binary unless ``multiclass``) in the l_``norm`` norm; radii from
    ``radii`` (default: ``NoiseRadii(radius_samples, seed, radius_kwargs=..., step=cache_step)``,
    shared by all settings). ``start`` (default: the first setting) must be in the grid: the best
    setting's score is >= the start's, the best being the argmax over the grid (first on ties).

    ``out``: a TSV of settings and scores, appended (flush + fsync) as each setting is scored; an
    interrupted run resumes from it -- settings already there are kept and skipped. Its
    ``.params.json`` records the settings that change scores (plus ``settings``, e.g. epochs:
    what ``train_fn`` depends on); resuming with other ones raises ValueError, and so does
    resuming scores without a readable record unless ``force_resume`` (they are then taken to be
    of these settings, which are recorded). ``certify_dir``:
    also write each setting's Cohen certify TSV there (``unicr curve`` reads them).
    ``on_model(noise, model)`` is called after each training (e.g. to save a checkpoint).

    Resumed runs: Gaussian settings score exactly as in an uninterrupted run. A non-Gaussian
    setting's radii come from grid points the engine computes in batches (shared samples and
    directions, the minimum over the directions found); which points share a batch depends on
    what the caches already hold, so after a resume such scores can differ from an
    uninterrupted run's in the last digits (measured: ~1% of the score on digits).
    """
    from tqdm.auto import tqdm

    if not callable(train_fn):
        raise TypeError(f"train_fn must be callable as train_fn(noise) -> model, "
                        f"got {type(train_fn).__name__}")
    noises = noise_grid() if noises is None else noises
    if isinstance(noises, Noise) or not hasattr(noises, "__iter__"):
        raise TypeError(f"noises must be a sequence of unicr_fast.noise.Noise, "
                        f"got {type(noises).__name__}")
    noises = [_check_noise(nz, "noises[]") for nz in noises]
    if not noises:
        raise ValueError("noises must not be empty")
    for i, a in enumerate(noises):
        if any(_same_setting(a, b) for b in noises[:i]):
            raise ValueError(f"noises lists {a!r} twice")
    start = noises[0] if start is None else _check_noise(start, "start")
    if not any(_same_setting(start, nz) for nz in noises):
        raise ValueError(f"start {start!r} is not one of the settings in noises; C-OPT takes the "
                         f"argmax over a grid that contains the start")
    x_val, y_val = _check_xy(x_val, y_val)
    p = check_norm(norm)
    n0, n = check_int(n0, "n0", 1), check_int(n, "n", 1)
    if n0 > n:
        raise ValueError(f"n0 ({n0}) must not exceed n ({n}): n0 selects, n estimates")
    alpha = check_probability_open(alpha, "alpha")
    batch_size = check_int(batch_size, "batch_size", 1)
    _check_bool(multiclass, "multiclass")
    seed = check_int(seed, "seed", 0)
    if settings is not None and not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict (JSON-serialisable), got "
                        f"{type(settings).__name__}")
    if radii is None:
        radii = NoiseRadii(radius_samples, seed, radius_kwargs=radius_kwargs, step=cache_step)
    elif not isinstance(radii, NoiseRadii):
        raise TypeError(f"radii must be a NoiseRadii, got {type(radii).__name__}")

    fh, done = None, []
    if out is not None:
        out = os.fspath(out)
        record = {"norm": "inf" if math.isinf(p) else p, "n0": n0, "n": n, "alpha": alpha,
                  "multiclass": multiclass, "seed": seed, "radius_samples": radii.num_samples,
                  "radius_seed": radii.seed, "cache_step": radii.step,
                  "radius_kwargs": {k: repr(v) for k, v in sorted(radii.radius_kwargs.items())},
                  "val_sha256": outfiles.sha256_tensors(x_val, y_val),
                  "settings": settings or {}}
        fh, done = _open_resumable(out, _copt_header(noises), record, len(x_val), force_resume)
    try:
        rows: List[CoptRow] = []
        resumed = 0
        columns = _param_columns(noises)
        with tqdm(total=len(noises), desc="copt", unit="setting", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            for noise in noises:
                old = next((r for r in done if _same_setting(r.noise, noise)), None)
                bar.set_postfix_str(noise_tag(noise))
                if old is not None:
                    rows.append(old)
                    resumed += 1
                    bar.update(1)
                    continue
                t0 = time.perf_counter()
                model = train_fn(noise)
                if not isinstance(model, torch.nn.Module):
                    raise TypeError(f"train_fn must return a torch.nn.Module, got "
                                    f"{type(model).__name__}")
                if on_model is not None:
                    on_model(noise, model)
                res = score_setting(model, noise, x_val, y_val, norm=p, n0=n0, n=n, alpha=alpha,
                                    batch_size=batch_size, multiclass=multiclass, seed=seed,
                                    radii=radii, num_classes=num_classes, progress=progress)
                row = CoptRow(noise, curve_mod.robustness_score(res),
                              float(np.mean(res.correct)), int((res.predict == ABSTAIN).sum()),
                              len(res), time.perf_counter() - t0, res)
                if certify_dir is not None:
                    _write_certify_tsv(res, os.path.join(certify_dir, noise_tag(noise) + ".tsv"))
                if fh is not None:
                    outfiles.append_line(fh, _copt_line(row, columns))
                rows.append(row)
                bar.update(1)
    finally:
        if fh is not None:
            fh.close()
    best = rows[int(np.argmax([r.score for r in rows]))]
    start_row = next(r for r in rows if _same_setting(r.noise, start))
    return CoptResult(rows, start_row, best, radii, out, resumed)


def _write_certify_tsv(res: curve_mod.CertifyResult, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\t".join(curve_mod.HEADER) + "\n")
        for i in range(len(res)):
            f.write(curve_mod.format_row(int(res.idx[i]), int(res.label[i]), int(res.predict[i]),
                                         float(res.radius[i]), int(res.correct[i]),
                                         float(res.seconds[i])))
    os.replace(tmp, path)


def plot_copt(rows: Sequence[CoptRow], out_path, *, curves: Optional[Dict[str, object]] = None,
              title: Optional[str] = None) -> str:
    """PNG: the score of every setting against sigma (one line per value of the other
    parameters, best setting starred); beside it, where ``curves`` ({label: CertifyResult or
    certify TSV path}) is given, the certified-accuracy curves."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    if not rows:
        raise ValueError("rows must not be empty")
    ncols = 2 if curves else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), squeeze=False)
    ax = axes[0][0]
    groups: Dict[str, List[CoptRow]] = {}
    for r in rows:
        rest = {k: v for k, v in r.noise.params.items() if k != "sigma"}
        label = r.noise.name + ("" if not rest else
                                " " + ", ".join(f"{k}={v:g}" for k, v in rest.items()))
        groups.setdefault(label, []).append(r)
    for label, grp in groups.items():
        grp = sorted(grp, key=lambda r: r.noise.sigma)
        ax.plot([r.noise.sigma for r in grp], [r.score for r in grp], "o-", label=label)
    best = max(rows, key=lambda r: r.score)
    ax.plot([best.noise.sigma], [best.score], "*", ms=16, color="k",
            label=f"best: {noise_tag(best.noise)}")
    ax.set_xlabel("sigma")
    ax.set_ylabel("robustness score (validation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    if curves:
        ax2 = axes[0][1]
        for label, res in curves.items():
            res = res if isinstance(res, curve_mod.CertifyResult) else \
                curve_mod.read_certify_tsv(res)
            if len(res) == 0:
                continue
            xs, ys = curve_mod.accuracy_steps(res)
            ax2.step(xs, ys, where="post", label=label, lw=2.5 if label == noise_tag(best.noise)
                     else 1.0)
        ax2.set_xlabel("radius")
        ax2.set_ylabel("certified accuracy (validation)")
        ax2.set_ylim(0, 1.02)
        ax2.set_xlim(left=0)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=6)
    fig.tight_layout()
    out_path = os.fspath(out_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


# -- the digits demo's pieces -------------------------------------------------------------------
def digits_split(val_fraction: float = 0.25, seed: int = 0):
    """(x_fit, y_fit, x_val, y_val): the digits *train* split cut into a training part and a
    validation part (stratified, fixed ``seed``). The held-out test split is not touched, so
    C-OPT's choice never sees it."""
    from sklearn.model_selection import train_test_split

    from ..datasets import digits
    val_fraction = check_probability_open(val_fraction, "val_fraction")
    seed = check_int(seed, "seed", 0)
    x, y = digits("train")
    x_fit, x_val, y_fit, y_val = train_test_split(x.numpy(), y.numpy(), test_size=val_fraction,
                                                  random_state=seed, stratify=y.numpy())
    return (torch.from_numpy(x_fit), torch.from_numpy(y_fit), torch.from_numpy(x_val),
            torch.from_numpy(y_val))


def digits_train_fn(x: torch.Tensor, y: torch.Tensor, *, epochs: int = 20, seed: int = 0,
                    device: str = "cpu", **kwargs) -> Callable[[Noise], torch.nn.Module]:
    """``train_fn(noise)`` for C-OPT: the digits demo MLP (``demo.train_mlp``) trained from
    scratch on (x, y) with that noise added to every batch."""
    from ..demo import train_mlp
    epochs = check_int(epochs, "epochs", 1)

    def train_fn(noise: Noise) -> torch.nn.Module:
        return train_mlp(noise, x, y, epochs=epochs, seed=seed, device=device, **kwargs)
    return train_fn


# == I-OPT ======================================================================================
@dataclass
class IOptResult:
    """What ``InputOptimizer.optimize`` found for one input."""
    label: int                      # ABSTAIN (-1) when the fresh bounds do not certify
    radius: float                   # certified on fresh draws at ``noise`` (0.0 on ABSTAIN)
    noise: Noise                    # the chosen setting
    p_a: float                      # fresh bounds at the chosen setting
    p_b: Optional[float]
    start_noise: Noise
    start_select_radius: float      # selection radius of the start setting
    select_radius: float            # selection radius of the chosen setting (>= the start's)
    evaluations: int                # settings evaluated on selection draws (start included)
    steps: int                      # moves of the climb
    trace: List[Tuple[Dict[str, float], float, float]] = field(default_factory=list)
    #                                 (params, selection radius, selection p_a) per evaluation


class InputOptimizer:
    """I-OPT: per input, choose the noise that maximises the certified radius, then certify it.

    The start setting, the model, the norm, ``multiclass`` and the radius-engine settings
    (``radius_samples``, ``radius_kwargs``, device) come from ``smooth`` (a ``Smooth``); the
    optimizer quacks like one (``certify(x, n0, n, alpha, batch_size) -> (label, radius)``, a
    settable ``seed``), so ``cli.certify_file(..., smooth=optimizer)`` runs it over a data set.

    Procedure for an input x (three independent streams of noise draws, all derived from
    ``seed``):

    1. *Label*: ``n0`` draws at the start setting; c = the most frequent class (Cohen).
    2. *Selection*: the climb. A setting theta is scored on ``n_select`` draws of its own noise
       (every setting uses the same seed, so settings differing in sigma see the same
       standardised draws scaled). Its score is the certified radius of class c that those counts
       project to at ``n`` draws -- the Clopper–Pearson bound at ``alpha`` of n (k + 1/2) / (m + 1)
       successes out of n, the quantity the final step maximises -- ties broken by that bound; a
       setting where c does not win scores radius 0. The climb starts at the start setting (always a candidate),
       evaluates the unvisited lattice neighbours of the current setting (sigma x/÷
       ``sigma_factor``; beta +/- ``beta_step``; within ``sigma_range`` / ``beta_range``), moves to
       the best of them only if it scores strictly more, and stops when none does or after
       ``max_steps`` moves. The current setting is always the best scored so far, so the chosen
       setting's selection radius is >= the start's on the same selection draws.
    3. *Certification*: ``n`` fresh draws at the chosen setting theta*; p_a (and p_b) by
       Clopper–Pearson at ``alpha`` (multiclass: alpha / 2 each, as ``Smooth``); the radius of
       the smoothed classifier g_theta* from the radius engine; ABSTAIN when p_a cannot beat p_b
       (binary: 1/2).

    Why the certificate stays valid although theta* was chosen by looking at x: the final
    certificate depends on the selection data only through the choice (c, theta*), and the
    fresh draws of step 3 are independent of the label and selection draws of steps 1-2.
    Conditionally on (c, theta*), the fresh count of class c is therefore Binomial(n,
    p_c(theta*)), and the Clopper–Pearson bound fails (p_a > p_c(theta*)) with probability <= alpha
    -- for every value of (c, theta*), hence also unconditionally. Where it holds, the radius is
    a valid radius of g_theta* at x (docs/theory.md §3). Re-using the selection draws for the final bound
    would void this (the winner's curse: the climb favours settings whose draws came out lucky).

    What is certified: the smoothed classifier g_theta* *with the noise fixed to theta*(x)* is
    constant (= c) on the l_p ball of that radius around x. It is not a certificate of "run I-OPT
    again at x + delta" (which could choose another setting); that is the standing caveat of
    input-dependent smoothing, stated here so that nobody reads more into the number.

    Radius-engine error (not covered by the argument above): the radius of a non-Gaussian
    setting is a Monte-Carlo estimate with a searched direction (docs/theory.md §4-§6), and the climb
    reads the same estimates, so it can favour settings where they run high. The estimates are
    few and fixed in advance: sigma moves rescale one estimate per shape exactly
    (``NoiseRadii``), and beta moves stay on a finite lattice chosen before any data is seen, so
    with ``radius_kwargs={"sound": True}`` a union bound over the lattice's betas turns the
    engine's per-shape failure probability (see ``certified_radius``) into one for the chosen
    setting. Gaussian settings (and general_normal with beta = 2) use the exact closed form.

    Costs per input: n0 + (evaluations x n_select) + n forward passes, and radius lookups
    (``NoiseRadii``: one engine run per new (beta, p_a grid point); shared across inputs).
    """

    ABSTAIN = ABSTAIN

    def __init__(self, smooth, *, params: Optional[Sequence[str]] = None,
                 sigma_factor: float = 1.25, sigma_range: Optional[Tuple[float, float]] = None,
                 beta_step: float = 0.25, beta_range: Optional[Tuple[float, float]] = None,
                 max_steps: int = 10, n_select: Optional[int] = None,
                 radii: Optional[NoiseRadii] = None, cache_step: Optional[float] = None):
        from ..smooth import Smooth
        if not isinstance(smooth, Smooth):
            raise TypeError(f"smooth must be a unicr_fast.Smooth, got {type(smooth).__name__}")
        start = smooth.noise
        if start.name not in FAMILIES or type(start) is not FAMILIES[start.name]:
            raise TypeError(f"smooth.noise must be a catalogue family ({', '.join(FAMILIES)}) "
                            f"so that sigma can be moved; got {type(start).__name__}")
        self.smooth, self.start = smooth, start
        is_gn = isinstance(start, GeneralNormal)
        if params is None:
            params = ("sigma", "beta") if is_gn else ("sigma",)
        if isinstance(params, str) or not hasattr(params, "__iter__"):
            raise TypeError(f"params must be a sequence of parameter names such as ('sigma', "
                            f"'beta'), got {type(params).__name__}")
        params = tuple(params)
        allowed = ("sigma", "beta") if is_gn else ("sigma",)
        bad = [q for q in params if q not in allowed]
        if bad or not params or len(set(params)) != len(params):
            raise ValueError(f"params must be distinct names among {list(allowed)} for noise "
                             f"'{start.name}', got {list(params)}")
        self.params = params
        self.sigma_factor = check_positive(sigma_factor, "sigma_factor")
        if self.sigma_factor <= 1:
            raise ValueError(f"sigma_factor must be > 1 (sigma moves to sigma x/÷ factor), "
                             f"got {self.sigma_factor}")
        s0 = start.sigma
        self.sigma_range = self._range(sigma_range, (s0 / 8, s0 * 4), s0, "sigma_range", "sigma")
        self.beta_step = check_positive(beta_step, "beta_step")
        b0 = start.beta if is_gn else None
        self.beta_range = (self._range(beta_range, (min(1.0, b0), max(3.0, b0)), b0,
                                       "beta_range", "beta") if is_gn else None)
        if not is_gn and beta_range is not None:
            raise ValueError(f"beta_range applies to general_normal noise only, not "
                             f"'{start.name}'")
        self.max_steps = check_int(max_steps, "max_steps", 0)
        self.n_select = None if n_select is None else check_int(n_select, "n_select", 1)
        if radii is None:
            cache = smooth.radius_cache
            if not isinstance(cache, RadiusCache):
                raise TypeError("smooth.radius_cache is not a RadiusCache, so the radius-engine "
                                "settings cannot be read from it; pass radii=NoiseRadii(...)")
            step = cache.step if cache_step is None else cache_step
            radii = NoiseRadii(cache.num_samples, cache.seed, cache.device, cache.radius_kwargs,
                               step=step)
        elif not isinstance(radii, NoiseRadii):
            raise TypeError(f"radii must be a NoiseRadii, got {type(radii).__name__}")
        self.radii = radii
        self.seed = smooth.seed
        self.last: Optional[IOptResult] = None

    @staticmethod
    def _range(value, default, start, name, what):
        if value is None:
            return default
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
            raise TypeError(f"{name} must be a pair (low, high), got {value!r}")
        lo, hi = (check_positive(v, name) for v in value)
        if not lo <= start <= hi:
            raise ValueError(f"{name} ({lo:g}, {hi:g}) must contain the start {what} {start:g}")
        return lo, hi

    # -- lattice -----------------------------------------------------------------------------
    def _noise_at(self, point: Tuple[int, int]) -> Optional[Noise]:
        """The setting at lattice point (i, j): sigma0 x factor^i, beta0 + j step; None outside
        the ranges."""
        i, j = point
        sigma = self.start.sigma * self.sigma_factor ** i
        lo, hi = self.sigma_range
        if not lo * (1 - 1e-12) <= sigma <= hi * (1 + 1e-12):
            return None
        if self.beta_range is None:
            return _with_params(self.start, sigma=sigma)
        beta = round(self.start.beta + j * self.beta_step, 12)
        lo, hi = self.beta_range
        if not lo - 1e-12 <= beta <= hi + 1e-12 or beta <= 0:
            return None
        return _with_params(self.start, sigma=sigma, beta=beta)

    def _neighbours(self, point):
        i, j = point
        out = []
        if "sigma" in self.params:
            out += [(i - 1, j), (i + 1, j)]
        if "beta" in self.params:
            out += [(i, j - 1), (i, j + 1)]
        return out

    # -- public ------------------------------------------------------------------------------
    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float,
                batch_size: int) -> Tuple[int, float]:
        """(label, radius) as ``Smooth.certify``; the full record is ``self.last``."""
        res = self.optimize(x, n0, n, alpha, batch_size)
        return res.label, res.radius

    def optimize(self, x: torch.Tensor, n0: int, n: int, alpha: float,
                 batch_size: int) -> IOptResult:
        n, n0 = check_int(n, "n", 1), check_int(n0, "n0", 1)
        if n0 > n:
            raise ValueError(f"n0 ({n0}) must not exceed n ({n}): n0 selects, n estimates")
        alpha = check_probability_open(alpha, "alpha")
        batch_size = check_int(batch_size, "batch_size", 1)
        check_input_tensor(x)
        self.seed = check_int(self.seed, "seed", 0)
        smooth = self.smooth
        smooth._check_input(x, batch_size)   # model/input device agreement
        m = self.n_select if self.n_select is not None else max(100, n // 10)
        label_seed, select_seed, fresh_seed = (
            int(s) for s in np.random.SeedSequence([self.seed, 0x10F7]).generate_state(3))
        model, k, dim = smooth.model, smooth.num_classes, x.numel()
        shape, dtype = tuple(x.shape), _draw_dtype(x)

        def draws(noise: Noise, seed: int):
            gen = torch.Generator(device=x.device).manual_seed(seed)
            return lambda size: noise.sample((size, *shape), generator=gen, device=x.device,
                                             dtype=dtype)

        # 1. label at the start setting
        label = int(np.argmax(_count(model, k, x, n0, batch_size, draws(self.start, label_seed))))

        # 2. selection: hill climb on the lattice
        scores: Dict[Tuple[int, int], Tuple[float, float]] = {}
        trace = []

        def evaluate(point) -> Tuple[float, float]:
            if point not in scores:
                noise = self._noise_at(point)
                counts = _count(model, k, x, m, batch_size, draws(noise, select_seed))
                p_a, p_b = _bounds(_projected(counts, m, n), label, n, alpha, smooth.multiclass)
                r = (self.radii.radius(noise, p_a, p_b, smooth.norm, dim)
                     if _certifies(p_a, p_b) else 0.0)
                scores[point] = (r, p_a)
                trace.append((dict(noise.params), r, p_a))
            return scores[point]

        current, steps = (0, 0), 0
        evaluate(current)
        while steps < self.max_steps:
            cands = [q for q in self._neighbours(current) if self._noise_at(q) is not None]
            if not cands:
                break
            best = max(cands, key=evaluate)   # first of equals, in neighbour order
            if evaluate(best) <= evaluate(current):
                break
            current, steps = best, steps + 1
        chosen = self._noise_at(current)

        # 3. certification on fresh draws at the chosen setting; the chance that a Monte-Carlo
        # radius overstates comes out of alpha (docs/theory.md §10; 0 for exact radii)
        failure = self.radii.bind(chosen).failure
        if failure >= alpha:
            raise ValueError(f"alpha = {alpha:g} must exceed the Monte-Carlo radius engine's "
                             f"failure probability {failure:g} (docs/theory.md §10)")
        counts = _count(model, k, x, n, batch_size, draws(chosen, fresh_seed))
        p_a, p_b = _bounds(counts, label, n, alpha - failure, smooth.multiclass)
        if _certifies(p_a, p_b):
            radius = self.radii.radius(chosen, p_a, p_b, smooth.norm, dim)
        else:
            label, radius = ABSTAIN, 0.0
        self.last = IOptResult(label, float(radius), chosen, p_a, p_b, self.start,
                               scores[(0, 0)][0], scores[current][0], len(scores), steps, trace)
        return self.last


def _projected(counts: np.ndarray, m: int, n: int) -> np.ndarray:
    """Counts out of n that m selection draws predict: n (k + 1/2) / (m + 1), rounded (the
    1/2 keeps an all-correct selection from promising the certain p_a = alpha^(1/n))."""
    return np.floor(n * (counts + 0.5) / (m + 1) + 0.5).astype(np.int64)


def iopt_certify(smooth, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                 **options) -> IOptResult:
    """I-OPT for one input with a one-off ``InputOptimizer(smooth, **options)`` (see there).
    For a data set build one optimizer and call ``certify``/``optimize`` per input: its radius
    caches are then shared."""
    return InputOptimizer(smooth, **options).optimize(x, n0, n, alpha, batch_size)
