"""Radius tables: the certified radius vs p_a (and p_b) on a grid for one (noise, norm, dim),
built once, saved to ``.npz`` and looked up per input, so a data set costs one table, not one
radius search per input (``Smooth(..., radius_table=...)``, ``unicr table``,
``unicr certify --radius-table``).

Grid. p_a runs over the points q_k = expit(k * step) of ``radius_cache.LogitGrid`` (the
RadiusCache's grid, so a table with the cache's step and engine settings holds the cache's
radii) from ``p_min`` (default 1/2: no binary radius below it) to ``p_max``, by default the
largest p_a a run with (n, alpha) can produce: the Clopper–Pearson lower bound when all n draws
hit, alpha^(1/n) ((alpha/2)^(1/n) multiclass, where Smooth bounds p_a at alpha/2). No point is
spent beyond it: n = 100,000, alpha = 0.001 gives 959 points at the default step.

Step (our choice, default 0.01 in logit, the RadiusCache's). Rounding p_a down to the grid loses
at most step * max dR/dlogit of radius: b * step for Laplace l1 (R = -b log(2 (1 - p)),
dR/dlogit = b p), 0.63 sigma * step for Gaussian l2 (sigma p (1 - p) / phi(Phi^-1(p)) peaks at
p = 1/2), l/2 * step for uniform l1, and a fraction ~step of R itself where R grows like
1 / (1 - p) (heavy tails). At 0.01 that is below 0.01 sigma (or 1% of R), several times below
the Clopper–Pearson slack of n = 100,000 at alpha = 0.001 (0.02 to 0.1 in logit).

Multiclass. A 2-D grid: p_b over the points expit(j * step_b) from 1 - p_max (the upper bound
when the runner-up never shows) to 1 - p_min. Default step_b 0.1: the p_b direction gets ~10x
fewer points (for Gaussian l2, R = sigma/2 (Phi^-1(p_a) - Phi^-1(p_b)) loses at most
0.31 sigma * step_b = 0.03 sigma), since the build runs the engine at every entry with
p_b <= 1 - p_a (about half the rectangle; the other entries hold what the engine returns there,
as it caps p_b at 1 - p_a: the binary radius). A multiclass table also holds the binary radii:
the binary radius at p_a bounds the radius at every p_b <= 1 - p_a from below (margin
2 P_Y(S_A) - 1 against P_Y(S_A) - P_Y(S_B), S_B inside the complement of S_A), so a lookup
returns the larger of the two bounds.

Lookup (conservative). p_a is rounded DOWN to the grid and p_b UP (p_b is first capped at
1 - p_a, which holds on the event where both bounds do). p_a below the grid -> 0.0; above its
top -> the top radius (the radius is non-decreasing in p_a); p_b below the grid -> its lowest
point; above it -> the binary bound alone. Before use, the radii are replaced by their monotone
envelope (``monotone_envelope``: suffix minimum over p_a, prefix minimum over p_b), which only
lowers them. A lookup is therefore the engine's radius at a grid point at or below the query in
p_a (at or above in p_b), or less. Where the engine's radius is monotone -- the true radius, and
``method="exact"`` (the exact law of L on fixed directions) -- that never exceeds the engine's
radius at the query itself. The Monte-Carlo engine is monotone in p_a only up to its sampling
error (its tie term e^t (p_a - P_X(L < t)) weighs the X-side tie count by e^t where the Y-side
tie count of the same samples may differ by sampling error), so an MC lookup can exceed the MC radius at the exact query by that much (measured:
0.2% at N = 2,000): at most the Monte-Carlo error of the two radii compared, which estimate
true radii in the right order.

Build. The exact engine sweeps whole curves (``unicr_fast.radius.exact.curve``, docs/theory.md §9.3):
one call for the binary column and one for all multiclass entries. Monte Carlo: one
``certified_radius`` call per chunk of ``chunk`` consecutive p_a points (and, multiclass, per
p_b point): one sample set and one direction set for all of them. Chunk
boundaries are fixed by the grid and a radius does not depend on the other p_a values of its
call beyond the engine's own monotone step, which the envelope subsumes, so a build interrupted
and resumed gives the same table as an uninterrupted one. With ``path`` the table is written
after every chunk (temporary file + ``os.replace``: a reader never sees half a file), and
building into an existing file resumes it once its settings are checked to be the same.

File (.npz, read with ``allow_pickle=False``): ``meta`` (a JSON string: format, version,
complete, settings, integrity), ``p_a``, ``radii`` and, multiclass, ``p_b`` and ``radii_mc``
(len(p_a) x len(p_b)). The settings are everything that determines the numbers: noise (name +
parameters), norm, dim, binary or multiclass, engine (num_samples, seed, method, radius_kwargs),
grid (step, index range, step_b) and chunk. The device is not: another device changes the
radii by floating-point rounding only. ``sha256`` hashes settings and radii, not the file's
bytes, so a rebuilt table with the same numbers has the same hash. ``integrity`` (format
version 2) is the sha256 of the rest of ``meta`` and of every array (name, dtype, shape,
bytes), checked on every load: a table edited after it was written -- its norm, its radii --
is refused, since it would serve radii of another table (it guards against accidents, not
against someone who recomputes the hash). Version 1 files (no integrity hash) are refused with
a request to rebuild.

Custom noise has no name + parameters that identify it: a table of it can be built and used in
memory (``check_matches`` then accepts only that very noise object), but not saved.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import zipfile
from typing import Dict, List, Optional

import numpy as np

from .._validation import (check_int, check_norm, check_positive, check_probability_open,
                          check_seed)
from ..confidence import clopper_pearson_lower
from ..noise import Custom, Noise
from . import certified_radius
from . import resolve_method
from .cache import _RESERVED, LogitGrid, certifying_kwargs, monte_carlo_failure

FORMAT = "unicr_fast.radius_table"
VERSION = 2     # 2: meta carries an integrity hash (``_integrity``)
DEFAULT_STEP = 0.01
DEFAULT_STEP_B = 0.1
DEFAULT_CHUNK = 64
_ALL = -1      # _Unit.column: all multiclass entries at once
#: The (n, alpha) the default p_max is reached with: ``unicr certify``'s defaults.
DEFAULT_N, DEFAULT_ALPHA = 100_000, 0.001

_CUSTOM = ("Custom noise has no name and parameters that identify it, so a table of it cannot "
           "be saved and checked later; use the table in memory (Smooth(..., radius_table=table)) "
           "or a catalogue noise family")


def noise_record(noise: Noise) -> Dict:
    """How files name a noise (radius tables, certify settings): name and parameters."""
    return {"name": noise.name, **{k: float(v) for k, v in noise.params.items()}}


def reachable_p_max(n: int, alpha: float, multiclass: bool = False) -> float:
    """The largest p_a a run with ``n`` draws at level ``alpha`` can produce: the one-sided
    Clopper–Pearson bound when all draws hit, alpha^(1/n) (alpha/2 multiclass, as in Smooth)."""
    n = check_int(n, "n", 1)
    alpha = check_probability_open(alpha, "alpha")
    return clopper_pearson_lower(n, n, alpha / 2 if multiclass else alpha)


def monotone_envelope(radii: np.ndarray) -> np.ndarray:
    """The largest array <= ``radii`` that is non-decreasing along axis 0 (p_a) and, if 2-D,
    non-increasing along axis 1 (p_b): the suffix minimum over p_a, then the prefix minimum
    over p_b (together: the minimum over every entry at higher p_a and lower p_b)."""
    out = np.minimum.accumulate(np.asarray(radii, dtype=np.float64)[::-1], axis=0)[::-1]
    if out.ndim == 2:
        out = np.minimum.accumulate(out, axis=1)
    return np.ascontiguousarray(out)


@dataclasses.dataclass(frozen=True)
class _Grid:
    """p_a points expit(k * step), k = k_lo..k_hi; multiclass also p_b points expit(j * step_b),
    j = j_lo..j_hi (None binary)."""
    step: float
    k_lo: int
    k_hi: int
    step_b: Optional[float] = None
    j_lo: Optional[int] = None
    j_hi: Optional[int] = None

    @classmethod
    def span(cls, step, p_min: float, p_max: float, step_b=None) -> "_Grid":
        grid_a = LogitGrid(step)
        k_lo, k_hi = int(grid_a.index_down(p_min)), int(grid_a.index_down(p_max))
        if k_hi <= k_lo:
            raise ValueError(f"p_max ({p_max}) must lie at least one step ({step} in logit) "
                             f"above p_min ({p_min})")
        if step_b is None:
            return cls(grid_a.step, k_lo, k_hi)
        grid_b = LogitGrid(step_b)
        return cls(grid_a.step, k_lo, k_hi, grid_b.step, int(grid_b.index_down(1.0 - p_max)),
                   int(grid_b.index_up(1.0 - p_min)))

    def p_a(self) -> np.ndarray:
        return LogitGrid(self.step).point(np.arange(self.k_lo, self.k_hi + 1))

    def p_b(self) -> Optional[np.ndarray]:
        if self.step_b is None:
            return None
        return LogitGrid(self.step_b).point(np.arange(self.j_lo, self.j_hi + 1))


@dataclasses.dataclass(frozen=True)
class _Unit:
    """One engine call of a build: p_a indices ``rows`` at p_b index ``column`` (None: binary;
    ``_ALL``: every multiclass entry the engine computes, in one exact sweep)."""
    column: Optional[int]
    rows: np.ndarray


class RadiusTable:
    """Certified radii of one (noise, norm, dim) on a p_a grid (multiclass: and a p_b grid),
    looked up conservatively (module docstring). Make one with ``RadiusTable.build`` or
    ``RadiusTable.load``; look up with ``radius`` / ``lookup``.

    Attributes: ``settings`` (the JSON record), ``noise`` (the Noise the table was built with in
    this process; None when loaded), ``noise_record``, ``norm``, ``dim``, ``multiclass``,
    ``engine``, ``p_a`` and ``radii`` (binary radii), ``p_b`` and ``radii_mc`` (multiclass,
    len(p_a) x len(p_b); None binary), ``complete`` (False while a build is unfinished).
    """

    def __init__(self, settings: Dict, radii: np.ndarray, radii_mc: Optional[np.ndarray], *,
                 complete: bool, noise: Optional[Noise] = None):
        self.settings, self.noise, self.complete = settings, noise, complete
        grid = _Grid(**settings["grid"])
        self.p_a, self.p_b = grid.p_a(), grid.p_b()
        self.radii, self.radii_mc = radii, radii_mc

    # -- what the table is for ----------------------------------------------------------------
    @property
    def noise_record(self) -> Dict:
        return self.settings["noise"]

    @property
    def norm(self) -> float:
        return check_norm(self.settings["norm"])

    @property
    def dim(self) -> int:
        return self.settings["dim"]

    @property
    def multiclass(self) -> bool:
        return self.settings["multiclass"]

    @property
    def engine(self) -> Dict:
        return self.settings["engine"]

    @property
    def failure(self) -> float:
        """Probability that this table's radii overstate (radius_cache.radius_failure): 0 for
        exact radii; a Monte-Carlo table must have been built in sound mode to certify."""
        if self.engine["method"] != "mc":   # recorded as resolved: "exact" or "mc"
            return 0.0
        return monte_carlo_failure(self.engine["radius_kwargs"])

    @property
    def key(self):
        """(norm, dim): what a ``Smooth`` files the table under."""
        return self.norm, self.dim

    @property
    def sha256(self) -> str:
        """Hash of the settings and radii (not of a file's bytes)."""
        h = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode())
        for arr in (self.radii, self.radii_mc):
            if arr is not None:
                h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        return h.hexdigest()

    def __repr__(self):
        kind = "multiclass" if self.multiclass else "binary"
        state = "complete" if self.complete else "unfinished"
        return (f"RadiusTable({_describe(self.noise_record)}, l{_norm_tag(self.norm)}, "
                f"dim {self.dim}, {kind}, {len(self.p_a)} p_a points in "
                f"[{self.p_a[0]:.6g}, {self.p_a[-1]:.6g}], {state})")

    def check_matches(self, noise: Noise, norm, dim: int, multiclass: bool) -> None:
        """ValueError saying what differs unless the table is for this noise, norm, dim and
        binary/multiclass setting."""
        if not isinstance(noise, Noise):
            raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
        noise = noise.bound(check_int(dim, "dim", 1))   # radial noise lives on R^dim
        diffs = []
        if isinstance(noise, Custom) or isinstance(self.noise, Custom):
            if noise is not self.noise:
                diffs.append("noise: the table was built for another noise object (Custom "
                             "noise matches only itself)")
        elif noise_record(noise) != self.noise_record:
            diffs.append(f"noise: {_describe(self.noise_record)} in the table, "
                         f"{_describe(noise_record(noise))} asked for")
        if check_norm(norm) != self.norm:
            diffs.append(f"norm: l{_norm_tag(self.norm)} in the table, "
                         f"l{_norm_tag(check_norm(norm))} asked for")
        if check_int(dim, "dim", 1) != self.dim:
            diffs.append(f"dim: {self.dim} in the table, {dim} asked for")
        if bool(multiclass) != self.multiclass:
            kinds = ("binary", "multiclass")
            diffs.append(f"{kinds[self.multiclass]} table, {kinds[bool(multiclass)]} asked for")
        if diffs:
            raise ValueError("the radius table does not match: " + "; ".join(diffs))

    # -- lookups ------------------------------------------------------------------------------
    def radius(self, p_a: float, p_b: Optional[float] = None) -> float:
        """The radius at (p_a rounded down, p_b rounded up); ``p_b=None``: the binary radius."""
        if np.ndim(p_a) or np.ndim(p_b):
            raise TypeError("radius() takes numbers; use lookup() for arrays")
        return float(self.lookup(p_a, p_b))

    def lookup(self, p_a, p_b=None) -> np.ndarray:
        """Radii for an array of p_a (``p_b``: None, a number, or an array shaped like p_a).
        A binary table answers any p_b with its binary bound, valid for p_b <= 1 - p_a."""
        if not self.complete:
            raise ValueError("this radius table is unfinished; finish its build first")
        pa = _probabilities(p_a, "p_a")
        pb = None if p_b is None else _probabilities(p_b, "p_b")
        k = np.searchsorted(self.p_a, pa, side="right") - 1      # rounded down; -1: below
        out = np.where(k >= 0, self.radii[np.maximum(k, 0)], 0.0)
        if pb is None or not self.multiclass:
            return out
        pb = np.minimum(pb, 1.0 - pa)   # p_b <= 1 - p_a on the event where both bounds hold
        j = np.searchsorted(self.p_b, pb, side="left")          # rounded up; len(p_b): above
        inside = (k >= 0) & (j < len(self.p_b))
        multi = self.radii_mc[np.maximum(k, 0), np.minimum(j, len(self.p_b) - 1)]
        return np.maximum(out, np.where(inside, multi, 0.0))

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def build(cls, noise: Noise, norm, dim: int, *, multiclass: bool = False,
              step: float = DEFAULT_STEP, step_b: float = DEFAULT_STEP_B, p_min: float = 0.5,
              p_max: Optional[float] = None, n: Optional[int] = None,
              alpha: Optional[float] = None, num_samples: int = 100_000, seed: int = 0,
              method: str = "auto", radius_kwargs: Optional[dict] = None,
              chunk: int = DEFAULT_CHUNK, device="auto", path=None,
              progress: bool = True) -> "RadiusTable":
        """Compute the table with ``certified_radius(noise, ..., num_samples, seed, device,
        method=method, **radius_kwargs)``; with ``path``, checkpoint it there after every chunk
        and resume a build already in that file (same settings, else ValueError).

        The p_a range is [p_min, p_max]; p_max defaults to ``reachable_p_max(n, alpha,
        multiclass)`` with n = 100,000 and alpha = 0.001 unless given (give p_max or (n, alpha),
        not both). ``step`` / ``step_b``: logit steps of the p_a / p_b grids; ``chunk``: p_a
        points per engine call. ``radius_kwargs`` values must be JSON numbers, strings or bools.
        ``method`` "auto" is recorded as the engine it resolves to; a Monte-Carlo table is built
        in sound mode (``radius_cache.certifying_kwargs``), as its radii back certificates.
        """
        if isinstance(noise, Noise):
            noise = noise.bound(check_int(dim, "dim", 1))   # radial noise lives on R^dim
        settings = _settings(noise, norm, dim, multiclass, step, step_b, p_min, p_max, n, alpha,
                             num_samples, seed, method, radius_kwargs, chunk)
        if path is not None and isinstance(noise, Custom):
            raise ValueError(_CUSTOM)
        if path is not None and os.path.exists(os.fspath(path)):
            table = cls._resume(os.fspath(path), settings, noise)
        else:
            table = cls(settings, None, None, complete=False, noise=noise)
            table.radii = np.full(len(table.p_a), np.nan)     # NaN: not computed yet
            if multiclass:
                table.radii_mc = np.full((len(table.p_a), len(table.p_b)), np.nan)
        table._fill(device, None if path is None else os.fspath(path), progress)
        return table

    @classmethod
    def _resume(cls, path: str, settings: Dict, noise: Noise) -> "RadiusTable":
        table = cls.load(path, finished=False)
        diffs = _diff(table.settings, settings)
        if diffs:
            raise ValueError(f"{path} holds a radius table built with other settings "
                             f"({'; '.join(diffs)}); give the same settings to resume it, or "
                             f"another path")
        table.noise = noise
        return table

    def _valid(self) -> np.ndarray:
        """Multiclass entries the engine computes: p_b <= 1 - p_a."""
        return self.p_b[None, :] <= 1.0 - self.p_a[:, None]

    def _units(self) -> List[_Unit]:
        """The engine calls of the whole build, chunk boundaries fixed by the grid. The exact
        engine sweeps whole curves (unicr_fast.radius.exact.curve): one call for the binary column and
        one for every multiclass entry, so ``chunk`` does not apply to it."""
        chunk, rows = self.settings["chunk"], np.arange(len(self.p_a))
        if self.engine["method"] == "exact":
            return [_Unit(None, rows)] + ([_Unit(_ALL, rows)] if self.multiclass else [])
        units = [_Unit(None, rows[c:c + chunk]) for c in range(0, len(rows), chunk)]
        if self.multiclass:
            valid = self._valid()
            for j in range(len(self.p_b)):
                for c in range(0, len(rows), chunk):
                    part = rows[c:c + chunk][valid[c:c + chunk, j]]
                    if part.size:
                        units.append(_Unit(j, part))
        return units

    def _values(self, unit: _Unit) -> np.ndarray:
        if unit.column is None:
            return self.radii[unit.rows]
        if unit.column == _ALL:
            return self.radii_mc[self._valid()]
        return self.radii_mc[unit.rows, unit.column]

    def _compute(self, unit: _Unit, device) -> None:
        e = self.engine
        if unit.column == _ALL:
            from .exact.curve import exact_radius_curve
            valid = self._valid()
            rows, cols = np.nonzero(valid)
            self.radii_mc[valid] = exact_radius_curve(self.noise, self.p_a[rows],
                                                      self.p_b[cols], self.norm, self.dim)
            return
        p_b = None if unit.column is None else float(self.p_b[unit.column])
        radii = certified_radius(self.noise, self.p_a[unit.rows], p_b, self.norm, self.dim,
                                 e["num_samples"], e["seed"], device, method=e["method"],
                                 **e["radius_kwargs"])
        if unit.column is None:
            self.radii[unit.rows] = radii
        else:
            self.radii_mc[unit.rows, unit.column] = radii

    def _fill(self, device, path: Optional[str], progress: bool) -> None:
        from tqdm.auto import tqdm
        if self.complete:
            return
        units = self._units()
        todo = [u for u in units if np.isnan(self._values(u)).any()]
        total = sum(len(u.rows) for u in units)
        with tqdm(total=total, initial=total - sum(len(u.rows) for u in todo), unit="radius",
                  desc=os.path.basename(path) if path else "radius table", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            for unit in todo:
                self._compute(unit, device)
                if path is not None:
                    self.save(path)
                bar.update(len(unit.rows))
        self.radii = monotone_envelope(self.radii)
        if self.multiclass:
            self.radii_mc = monotone_envelope(np.where(self._valid(), self.radii_mc,
                                                       self.radii[:, None]))
        self.complete = True
        if path is not None:
            self.save(path)

    # -- files ----------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the table to ``path`` (.npz) atomically: a temporary file, then os.replace."""
        if isinstance(self.noise, Custom):
            raise ValueError(_CUSTOM)
        path = os.fspath(path)
        meta = {"format": FORMAT, "version": VERSION, "complete": self.complete,
                "settings": self.settings}
        arrays = {"p_a": self.p_a, "radii": self.radii}
        if self.multiclass:
            arrays.update(p_b=self.p_b, radii_mc=self.radii_mc)
        arrays = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}
        meta["integrity"] = _integrity(meta, arrays)
        arrays["meta"] = np.array(json.dumps(meta))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"   # one per process: concurrent builds never share one
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path, finished: bool = True) -> "RadiusTable":
        """Read a table saved by ``save`` / ``build(path=...)``. FileNotFoundError for a missing
        file, ValueError for a file that is not a readable radius table, or (``finished``) an
        unfinished one (``finished=False`` returns it; its ``complete`` is False)."""
        table = cls._read(path)
        if finished and not table.complete:
            done = int(np.isfinite(table.radii).sum())
            raise ValueError(f"{os.fspath(path)} is an unfinished radius table ({done} of "
                             f"{len(table.radii)} binary radii); finish it with `unicr table` "
                             f"(the same arguments) or RadiusTable.build(..., path=...)")
        return table

    @classmethod
    def _read(cls, path) -> "RadiusTable":
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"radius table '{path}' does not exist; build it with "
                                    f"`unicr table ... --out {path}`")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("it holds one array (.npy), not an .npz archive")
            with data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"'{path}' is not a radius table: it cannot be read as .npz "
                             f"({exc})") from None
        return cls._from_arrays(arrays, path)

    @classmethod
    def _from_arrays(cls, arrays: Dict, path: str) -> "RadiusTable":
        meta = _meta(arrays, path)
        try:
            table = cls(meta["settings"], _float_array(arrays, "radii"),
                        _float_array(arrays, "radii_mc") if meta["settings"]["multiclass"]
                        else None, complete=meta["complete"] is True)
            _check_arrays(table, arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"'{path}' is a corrupted radius table ({exc}); rebuild it") from None
        # Last, so that damage the checks above name is reported as such.
        recorded = meta.pop("integrity", None)
        if recorded != _integrity(meta, {k: v for k, v in arrays.items() if k != "meta"}):
            raise ValueError(f"'{path}' fails its integrity check: its metadata or arrays differ "
                             f"from what was written (the sha256 recorded in it does not match "
                             f"its contents), so its radii cannot be trusted; rebuild it with "
                             f"`unicr table`")
        return table


# -- helpers ------------------------------------------------------------------------------------
def _settings(noise, norm, dim, multiclass, step, step_b, p_min, p_max, n, alpha, num_samples,
              seed, method, radius_kwargs, chunk) -> Dict:
    """The checked settings record of a build (what the numbers depend on)."""
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
    if not isinstance(multiclass, bool):
        raise TypeError(f"multiclass must be a bool, got {type(multiclass).__name__}")
    p = check_norm(norm)
    p_min = check_probability_open(p_min, "p_min")
    if not multiclass and p_min < 0.5:
        raise ValueError(f"p_min must be >= 0.5 for a binary table (no binary radius below "
                         f"p_a = 1/2), got {p_min}")
    if p_max is None:
        p_max = reachable_p_max(DEFAULT_N if n is None else n,
                                DEFAULT_ALPHA if alpha is None else alpha, multiclass)
    elif n is not None or alpha is not None:
        raise ValueError("give p_max or (n, alpha), not both: (n, alpha) set p_max")
    p_max = check_probability_open(p_max, "p_max")
    method = resolve_method(noise, method)
    radius_kwargs = _radius_kwargs(radius_kwargs)
    if method == "mc":   # the table's radii back certificates: sound mode
        radius_kwargs = certifying_kwargs(noise, dict(radius_kwargs, method="mc"))
        del radius_kwargs["method"]
    grid = _Grid.span(check_positive(step, "step"), p_min, p_max,
                      check_positive(step_b, "step_b") if multiclass else None)
    settings = {"noise": noise_record(noise), "norm": "inf" if math.isinf(p) else p,
                "dim": check_int(dim, "dim", 1), "multiclass": multiclass,
                "engine": {"num_samples": check_int(num_samples, "num_samples", 1),
                           "seed": check_seed(seed), "method": method,
                           "radius_kwargs": dict(sorted(radius_kwargs.items()))},
                "grid": dataclasses.asdict(grid), "chunk": check_int(chunk, "chunk", 1)}
    return json.loads(json.dumps(settings))   # exactly what a file gives back


def _radius_kwargs(kwargs) -> Dict:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"radius_kwargs must be a dict, got {type(kwargs).__name__}")
    reserved = sorted((_RESERVED | {"method"}) & set(kwargs))
    if reserved:
        raise ValueError(f"radius_kwargs must not set {reserved}: the table sets them")
    odd = sorted(k for k, v in kwargs.items() if not isinstance(v, (bool, int, float, str)))
    if odd:
        raise TypeError(f"radius_kwargs {odd}: a table records its settings as JSON, so values "
                        f"must be numbers, strings or bools")
    return dict(sorted(kwargs.items()))


def _diff(old: Dict, new: Dict, prefix: str = "") -> List[str]:
    """'key: old there, new now' for every leaf that differs (nested keys joined by '.')."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} now")
    return out


def _integrity(meta: Dict, arrays: Dict) -> str:
    """sha256 of a table file's contents: ``meta`` (without its integrity entry) and every
    array by name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"\n{name} {arr.dtype.str} {arr.shape}\n".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _meta(arrays: Dict, path: str) -> Dict:
    """The checked metadata of a table file (ValueError naming what is wrong)."""
    not_table = f"'{path}' is not a radius table"
    if "meta" not in arrays:
        raise ValueError(f"{not_table}: an .npz file without its 'meta' entry (build tables with "
                         f"`unicr table`)")
    raw = arrays["meta"]
    try:
        meta = json.loads(str(raw[()])) if raw.shape == () and raw.dtype.kind == "U" else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{not_table}: its 'meta' entry is not a {FORMAT} record")
    if meta.get("version") != VERSION:
        raise ValueError(f"'{path}' is a radius table of format version {meta.get('version')!r}; "
                         f"this unicr_fast reads version {VERSION}: rebuild it with `unicr table`")
    return meta


def _float_array(arrays: Dict, name: str) -> np.ndarray:
    if name not in arrays:
        raise KeyError(f"no '{name}' array")
    arr = arrays[name]
    if arr.dtype.kind != "f":
        raise TypeError(f"'{name}' has dtype {arr.dtype}, not float")
    return arr.astype(np.float64)


def _check_arrays(table: RadiusTable, arrays: Dict) -> None:
    """Types, shapes, grid points and values of a table read from a file agree."""
    check_norm(table.settings["norm"])
    if not (isinstance(table.noise_record, dict) and isinstance(table.engine, dict)
            and isinstance(table.multiclass, bool) and type(table.dim) is int):
        raise TypeError("its settings have the wrong types")
    if not np.allclose(_float_array(arrays, "p_a"), table.p_a, rtol=1e-12, atol=0):
        raise ValueError("its p_a points are not the grid its settings describe")
    grids = [("radii", table.radii, (len(table.p_a),))]
    if table.multiclass:
        if not np.allclose(_float_array(arrays, "p_b"), table.p_b, rtol=1e-12, atol=0):
            raise ValueError("its p_b points are not the grid its settings describe")
        grids.append(("radii_mc", table.radii_mc, (len(table.p_a), len(table.p_b))))
    for name, arr, shape in grids:
        if arr.shape != shape:
            raise ValueError(f"'{name}' has shape {arr.shape}, its grid {shape}")
        known = arr[~np.isnan(arr)] if not table.complete else arr
        if not np.all(np.isfinite(known) & (known >= 0)):
            raise ValueError(f"'{name}' holds values that are not radii (negative, inf or NaN)")
        if table.complete and not np.array_equal(monotone_envelope(arr), arr):
            raise ValueError(f"'{name}' is not monotone in p_a (and p_b)")


def _probabilities(p, name: str) -> np.ndarray:
    arr = np.asarray(p) if not isinstance(p, str) else None
    if arr is None or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(p).__name__}")
    arr = arr.astype(np.float64)
    bad = np.isnan(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, 1], got {arr[bad].flat[0]}")
    return arr


def _norm_tag(p: float) -> str:
    return "inf" if math.isinf(p) else f"{p:g}"


def _describe(record: Dict) -> str:
    params = ", ".join(f"{k}={v:g}" for k, v in record.items() if k != "name")
    return f"{record.get('name')}({params})"
