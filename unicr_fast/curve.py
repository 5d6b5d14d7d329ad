"""Certified accuracy vs radius from ``unicr certify`` TSV files (Cohen et al.'s format).

The certify TSV has a header ``idx label predict radius correct time`` and one row per input;
abstentions are rows with ``predict == -1`` (radius 0, correct 0).

* certified accuracy at radius r: the fraction of rows with ``correct == 1`` and ``radius >= r``
  (Cohen et al.'s definition; at r = 0 it is the smoothed classifier's clean accuracy);
* robustness score: the area under that curve, integral_0^inf acc(r) dr. Each row contributes
  ``correct * radius`` to the integral, so the score is exactly the mean of ``correct * radius``
  (the "average certified radius", ACR) -- no grid is involved.
"""
from __future__ import annotations

import datetime
import math
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

HEADER = ("idx", "label", "predict", "radius", "correct", "time")


@dataclass
class CertifyResult:
    """The columns of one certify TSV (complete rows only)."""
    path: str
    idx: np.ndarray
    label: np.ndarray
    predict: np.ndarray
    radius: np.ndarray
    correct: np.ndarray
    seconds: np.ndarray

    def __len__(self):
        return len(self.idx)

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]


def parse_time(text: str) -> float:
    """Seconds from a ``datetime.timedelta`` string ('0:00:01.5', '1 day, 0:00:00') or a number."""
    text = text.strip()
    m = re.fullmatch(r"(?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d*)?)", text)
    if m:
        days, h, mi, s = m.groups()
        return int(days or 0) * 86400 + int(h) * 3600 + int(mi) * 60 + float(s)
    return float(text)


def format_time(seconds: float) -> str:
    """Cohen et al.'s time column: str(datetime.timedelta)."""
    return str(datetime.timedelta(seconds=round(seconds, 6)))


def format_row(idx: int, label: int, predict: int, radius: float, correct: int,
               seconds: float) -> str:
    return f"{idx}\t{label}\t{predict}\t{radius:.6g}\t{correct}\t{format_time(seconds)}\n"


class BadRow(ValueError):
    """A line of a certify TSV (after its header) that is not a row certify could have written;
    the message names the file and the line number."""


def _row_problem(row: tuple, first_line: dict) -> Optional[str]:
    """Why a parsed row cannot be a certify result (None: it can). ``first_line``: the line of
    each idx seen so far."""
    idx, label, predict, radius, correct, seconds = row
    if idx < 0 or label < 0:
        return f"idx {idx} and label {label} must be >= 0"
    if idx in first_line:
        return f"idx {idx} is on line {first_line[idx]} already (one row per input)"
    if predict < -1:
        return f"predict {predict} is neither a class (>= 0) nor -1 (abstain)"
    if not (math.isfinite(radius) and radius >= 0):
        return f"radius {radius} is not a finite number >= 0"
    if correct != int(predict == label):
        return (f"correct is {correct} with predict {predict} and label {label} (1 exactly when "
                f"they are equal)")
    if not (math.isfinite(seconds) and seconds >= 0):
        return f"time {seconds} is not a duration >= 0"
    return None


def parse_rows(text: str, path: str = "<text>"):
    """(complete rows as tuples, number of characters they span incl. header).

    The text must start with the header line. A last line without its newline is a row whose
    write was interrupted: it is not returned and not counted in the span. Any other line that
    certify could not have written -- not six fields of the right types, a non-finite or
    negative radius, an idx seen before, ``correct`` other than ``predict == label`` -- raises
    ``BadRow`` naming its line number (a ValueError, as a bad header does)."""
    lines = text.split("\n")
    tail = lines.pop()  # "" when the text ends with a newline, else an unfinished line
    if not lines:
        raise ValueError(f"'{path}' has no complete header line; expected "
                         f"'{chr(9).join(HEADER)}'")
    if tuple(lines[0].rstrip("\r").split("\t")) != HEADER:
        raise ValueError(f"'{path}' does not start with the certify header "
                         f"'{chr(9).join(HEADER)}' (got '{lines[0][:80]}')")
    rows, first_line = [], {}
    for num, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r").split("\t")
        try:
            if len(fields) != len(HEADER):
                raise ValueError(f"{len(fields)} fields")
            row = (int(fields[0]), int(fields[1]), int(fields[2]), float(fields[3]),
                   int(fields[4]), parse_time(fields[5]))
        except ValueError as exc:
            raise BadRow(f"'{path}' line {num} is not a certify row ({exc}): '{line[:80]}'; "
                         f"expected {len(HEADER)} tab-separated fields "
                         f"{', '.join(HEADER)}") from None
        problem = _row_problem(row, first_line)
        if problem:
            raise BadRow(f"'{path}' line {num} is not a certify result: {problem}: "
                         f"'{line[:80]}'")
        first_line[row[0]] = num
        rows.append(row)
    return rows, len(text) - len(tail)


def read_certify_tsv(path) -> CertifyResult:
    """Read a certify TSV; an unfinished last line (a run in progress or killed) is ignored."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"certify result '{path}' does not exist; give a TSV written by "
                                f"'unicr certify --out'")
    with open(path, "r", encoding="utf-8", newline="") as f:
        rows, _ = parse_rows(f.read(), path)
    cols = list(zip(*rows)) if rows else [()] * len(HEADER)
    ints = [np.asarray(c, dtype=np.int64) for c in cols[:3]]
    return CertifyResult(path, *ints, np.asarray(cols[3], dtype=np.float64),
                         np.asarray(cols[4], dtype=np.int64), np.asarray(cols[5], dtype=np.float64))


def _as_result(result) -> CertifyResult:
    return result if isinstance(result, CertifyResult) else read_certify_tsv(result)


def _check_nonempty(res: CertifyResult):
    if len(res) == 0:
        raise ValueError(f"'{res.path}' has no rows yet; certify some inputs first")


def certified_accuracy(result, radii) -> np.ndarray:
    """Fraction of rows that are correct with radius >= r, for each r in ``radii``."""
    res = _as_result(result)
    _check_nonempty(res)
    radii = np.asarray(radii, dtype=np.float64)
    good = np.sort(res.radius[res.correct == 1])
    # rows with radius >= r: len - (number of radii < r)
    count = len(good) - np.searchsorted(good, radii, side="left")
    return count / len(res)


def robustness_score(result) -> float:
    """Area under the certified-accuracy curve = mean of correct * radius (exact)."""
    res = _as_result(result)
    _check_nonempty(res)
    return float(np.mean(res.radius * (res.correct == 1)))


def default_radii(max_radius: float, points: int = 8) -> np.ndarray:
    """0, s, 2s, ... with a 'nice' step s (1, 2, 2.5 or 5 times a power of 10) so that about
    ``points`` steps cover ``max_radius``."""
    if not max_radius > 0:
        return np.array([0.0])
    raw = max_radius / points
    base = 10.0 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
    count = int(math.floor(max_radius / step + 1e-9))
    return np.round(np.arange(count + 1) * step, 10)


@dataclass
class CurveRow:
    name: str
    n: int
    abstain: int
    accuracy: np.ndarray   # certified accuracy at each radius of the table
    score: float           # area under the curve (ACR)
    seconds: float         # total certification time of the rows


def curve_table(results: Sequence, radii: Optional[Sequence[float]] = None):
    """(radii, [CurveRow per result]); ``results`` are paths or CertifyResult objects."""
    res = [_as_result(r) for r in results]
    for r in res:
        _check_nonempty(r)
    if radii is None:
        radii = default_radii(max(float(r.radius.max()) for r in res))
    radii = np.asarray(radii, dtype=np.float64)
    rows = [CurveRow(r.name, len(r), int((r.predict == -1).sum()), certified_accuracy(r, radii),
                     robustness_score(r), float(r.seconds.sum())) for r in res]
    return radii, rows


def format_table(radii, rows: List[CurveRow]) -> str:
    """Aligned text table: one line per result, certified accuracy (%) per radius, then the score."""
    name_w = max([4] + [len(r.name) for r in rows])
    head = [f"{'file':<{name_w}}", f"{'n':>5}", f"{'abst':>5}"]
    head += [f"{'r=' + format(r, 'g'):>8}" for r in radii] + [f"{'score':>8}", f"{'time':>9}"]
    lines = ["  ".join(head)]
    for row in rows:
        cells = [f"{row.name:<{name_w}}", f"{row.n:>5}", f"{row.abstain:>5}"]
        cells += [f"{100 * a:>7.1f}%" for a in row.accuracy]
        cells += [f"{row.score:>8.4f}", f"{row.seconds:>8.1f}s"]
        lines.append("  ".join(cells))
    return "\n".join(lines) + "\n"


def table_tsv(radii, rows: List[CurveRow]) -> str:
    """The same table as TSV (accuracies as fractions)."""
    out = ["\t".join(["file", "n", "abstain"] + [f"{r:g}" for r in radii]
                     + ["score", "seconds"])]
    for row in rows:
        out.append("\t".join([row.name, str(row.n), str(row.abstain)]
                             + [f"{a:.6g}" for a in row.accuracy]
                             + [f"{row.score:.6g}", f"{row.seconds:.3f}"]))
    return "\n".join(out) + "\n"


def accuracy_steps(res) -> Tuple[np.ndarray, np.ndarray]:
    """(radii, certified accuracy) of the step curve, for ``ax.step(..., where="post")``:
    acc = (m - k) / n on [good[k-1], good[k]), good = sorted radii of the m correct rows."""
    good = np.sort(res.radius[res.correct == 1])
    xs = np.concatenate([[0.0], good])
    ys = (len(good) - np.arange(len(good) + 1)) / len(res)
    return xs, ys


def plot_curves(results: Sequence, out_path, title: Optional[str] = None,
                labels: Optional[Sequence[str]] = None) -> str:
    """Step plot of the exact certified-accuracy curves, one line per result; writes a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = [_as_result(r) for r in results]
    if labels is not None and len(labels) != len(res):
        raise ValueError(f"got {len(labels)} labels for {len(res)} results; give one per file")
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(res):
        _check_nonempty(r)
        xs, ys = accuracy_steps(r)
        label = labels[i] if labels is not None else r.name
        ax.step(xs, ys, where="post", label=f"{label} (score {robustness_score(r):.3f})")
    ax.set_xlabel("radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out_path = os.fspath(out_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
