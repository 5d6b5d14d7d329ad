"""The ``unicr`` command: radius, certify, curve, validate, demo.

Exit codes: 0 success, 1 a failure while running, 2 bad arguments (argparse's convention; every
message says what was wrong and what would be right), 130 interrupted (certify: rerun the same
command to resume).
"""
from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import curve as curve_mod
from .. import outfiles
from .._validation import check_norm
from .optimize import add_optimize_commands
from .scale import add_scale_commands
from .table import add_table_command, certify_table
from ..noise import FAMILIES, Noise, make
from ..radius.table import noise_record as _noise_record
from ..validate import norm_tag


class UsageError(ValueError):
    """A bad argument found after parsing (the command exits with code 2)."""


# -- argument types ---------------------------------------------------------------------------
def _norm_arg(text: str) -> float:
    try:
        return check_norm(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{exc} (examples: 1, 2, 1.5, inf)") from None


def _float_arg(low: float, high: float, low_open: bool, high_open: bool):
    lo_b, hi_b = "(" if low_open else "[", ")" if high_open else "]"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number; expected a number in "
                                             f"{lo_b}{low:g}, {high:g}{hi_b}") from None
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if not ok or math.isnan(v):
            raise argparse.ArgumentTypeError(f"{text} is outside {lo_b}{low:g}, {high:g}{hi_b}")
        return v
    return parse


_positive = _float_arg(0.0, math.inf, True, True)
_prob_open = _float_arg(0.0, 1.0, True, True)      # alpha
_p_a = _float_arg(0.0, 1.0, True, False)           # (0, 1]
_p_b = _float_arg(0.0, 1.0, False, False)          # [0, 1]


def _int_arg(minimum: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer; expected an integer "
                                             f">= {minimum}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{v} is too small; expected an integer >= {minimum}")
        return v
    return parse


def _param_arg(text: str):
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE; write e.g. --param beta=1.5")
    try:
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': value '{value}' is not a number; write e.g. "
                                         f"--param beta=1.5") from None


def _family_arg(text: str) -> str:
    key = text.strip().lower().replace("-", "_")
    if key not in FAMILIES:
        raise argparse.ArgumentTypeError(f"unknown noise family '{text}'; choose one of "
                                         f"{', '.join(sorted(FAMILIES))}")
    return key


def family_params(name: str) -> List[str]:
    """The extra parameters (besides sigma) a noise family takes."""
    sig = inspect.signature(FAMILIES[name].__init__)
    return [p for p in sig.parameters if p not in ("self", "sigma")]


def make_noise(name: str, sigma: float, params: Sequence = (), dim: Optional[int] = None) -> Noise:
    """A noise object from CLI pieces; bad parameters raise UsageError naming the valid ones.
    ``dim``: the input dimension, for families whose density depends on it (radial); without
    it they are bound to the data's dimension later (``bind_to_data``)."""
    extra = dict(params or ())
    takes = family_params(name)
    if "sigma" in extra:
        raise UsageError("give sigma with --sigma, not --param sigma=...")
    if "dim" in takes:
        if "dim" in extra:
            raise UsageError(f"noise '{name}' takes its dimension from the input (--dim or the "
                             f"data), not from --param dim=...")
        if dim is not None:
            extra["dim"] = dim
    unknown = sorted(set(extra) - set(takes))
    if unknown:
        valid = ", ".join(takes) if takes else "none"
        raise UsageError(f"noise '{name}' has no parameter {', '.join(unknown)}; "
                         f"its parameters: {valid}")
    try:
        return make(name, sigma=sigma, **extra)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad parameter for noise '{name}': {exc}") from None


def bind_to_data(noise: Noise, x) -> Noise:
    """``noise`` for the points of the data set ``x`` (N, ...): radial noise gets their
    dimension; UsageError if it was built for another one."""
    try:
        return noise.bound(int(math.prod(x.shape[1:])))
    except ValueError as exc:
        raise UsageError(f"--noise: {exc}") from None


def _noise_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--noise", required=True, type=_family_arg, metavar="NAME",
                   help=f"noise family: {', '.join(sorted(FAMILIES))}")
    p.add_argument("--param", action="append", type=_param_arg, default=[], metavar="KEY=VALUE",
                   help="extra noise parameter, repeatable (general_normal: beta; pareto: a; "
                        "laplace_gaussian_mixture: weight; exponential_mixture: weight, beta1, "
                        "beta2; radial: q (inf allowed), beta -- its dim is the input's)")
    p.add_argument("--sigma", required=True, type=_positive,
                   help="per-coordinate standard deviation of the noise (Cauchy: its scale)")


def add_force_resume(p: argparse.ArgumentParser, what: str) -> None:
    """--force-resume: resume rows whose settings record is missing or unreadable."""
    p.add_argument("--force-resume", action="store_true",
                   help=f"resume {what} even though its settings record (.params.json) is "
                        f"missing or unreadable: its rows are taken to be of this run's "
                        f"settings, which are then recorded (without it such a resume is "
                        f"refused)")


METHODS = ("auto", "exact", "mc")


def add_method_arg(p: argparse.ArgumentParser, extra: str = "") -> None:
    """--method: the radius engine behind a command's certificates."""
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="radius engine behind the certificates: exact (exact laws; the "
                        "catalogue's product noise only), mc (Monte Carlo, sound mode), or auto: "
                        "exact for product noise, mc for radial noise. The engine is recorded "
                        "with the output and a resume must use the same one. Gaussian noise "
                        "keeps its closed form whatever the method" + extra)


def check_method(noise: Noise, method: str) -> str:
    """The engine (``"exact"`` or ``"mc"``) that --method ``method`` means for ``noise``;
    UsageError naming --method when it does not apply (e.g. exact with radial noise)."""
    from ..radius import resolve_method
    try:
        return resolve_method(noise, method)
    except ValueError as exc:
        raise UsageError(f"--method {method} does not apply to noise '{noise.name}': {exc} "
                         f"(--method auto picks the engine that applies)") from None


def _engine_device(name: str) -> str:
    """A --device for the radius engine: 'auto' is left to it (it picks CUDA only where the
    compiled CUDA backend is present too)."""
    return name if name == "auto" else _device(name)


def _device(name: str) -> str:
    """A --device for a model: 'auto' is cuda where torch sees a GPU, else cpu."""
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available here; use --device cpu "
                         f"or auto")
    try:
        torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device '{name}' is not a device; use auto, cpu or cuda[:k]") from None
    return name


# -- certify ----------------------------------------------------------------------------------
PARAMS_SUFFIX = outfiles.PARAMS_SUFFIX
#: Settings that change the numbers: a resumed run must use the same ones.
#: "method" is the engine the radii came from (resolved: "exact" or "mc"; a radius table's own);
#: an output recorded before --method existed has none, and is refused like any other mismatch.
_RESUME_KEYS = ("noise", "norm", "n0", "n", "alpha", "skip", "seed", "multiclass",
                "radius_samples", "model_sha256", "data_sha256", "radius_table_sha256", "method")


@dataclass
class CertifySummary:
    out: str
    total: int        # inputs in the schedule (skip / max applied)
    resumed: int      # of them, already in the file before this run
    written: int      # rows written by this run


def point_seed(seed: int, idx: int) -> int:
    """The noise seed of input ``idx``: a row's numbers do not depend on which rows ran before
    (so an interrupted and resumed run writes what an uninterrupted one would)."""
    return int(np.random.SeedSequence([seed, idx]).generate_state(1)[0])


def _lock(fh, out: str) -> None:
    """Exclusive lock on the open output, so two runs never append to one file."""
    if not outfiles.try_lock(fh):
        raise UsageError(f"another process is writing --out {out}; wait for it to finish or "
                         f"choose another --out")


def resume_rows(fh, out: str) -> List[tuple]:
    """Complete rows already in the open file ``fh`` (binary, readable). A last line without
    its newline -- a write cut short by a kill -- is truncated away; a file that is not a
    certify TSV, or holds a line that is not a row certify could have written (``parse_rows``),
    raises UsageError naming it and is left as it is."""
    fh.seek(0)
    raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\n" not in text and "\t".join(curve_mod.HEADER).startswith(text):
        span, rows = 0, []  # empty, or killed while writing the header
    else:
        try:
            if text is None:
                raise ValueError(f"'{out}' is not a text file")
            rows, span = curve_mod.parse_rows(text, out)
        except curve_mod.BadRow as exc:
            raise UsageError(f"--out {out} cannot be resumed: {exc}; delete that line (its input "
                             f"is certified again) or choose another --out") from None
        except ValueError as exc:
            raise UsageError(f"--out {out} exists and is not a certify TSV that can be resumed "
                             f"({exc}); choose another --out or delete the file") from None
    nbytes = len(text[:span].encode("utf-8"))
    if nbytes < len(raw):
        fh.truncate(nbytes)
        fh.flush()
        os.fsync(fh.fileno())
    fh.seek(0, os.SEEK_END)
    return rows


_append = outfiles.append_line
_write_settings = outfiles.write_settings


def check_rows_fit_data(rows: Sequence[tuple], out: str, y, skip: int) -> None:
    """UsageError naming ``out`` and the line of the first of its ``rows`` (parsed, in file order
    from line 2) that a run on the labels ``y`` with ``skip`` cannot have written: an idx outside
    the data set or off the --skip grid, or a label other than the data set's."""
    for num, (idx, label, *_) in enumerate(rows, start=2):
        if idx >= len(y):
            problem = f"idx {idx}, but the data set has {len(y)} inputs (0..{len(y) - 1})"
        elif idx % skip:
            problem = f"idx {idx} is not one of 0, {skip}, {2 * skip}, ... (--skip {skip})"
        elif label != int(y[idx]):
            problem = f"label {label}, but input {idx} of the data set has label {int(y[idx])}"
        else:
            continue
        raise UsageError(f"--out {out} cannot be resumed: '{out}' line {num} is not a row of this "
                         f"run ({problem}); delete that line (its input is certified again) or "
                         f"choose another --out")


def _check_settings(out: str, settings: Dict, force_resume: bool = False) -> None:
    """Refuse to resume ``out`` (it holds rows) if its recorded settings differ from
    ``settings``, or are missing or unreadable unless ``force_resume``."""
    try:
        diff = outfiles.settings_differences(out, settings, _RESUME_KEYS, force=force_resume,
                                             flag="--force-resume")
    except ValueError as exc:
        raise UsageError(f"--out {exc}") from None
    if diff:
        raise UsageError(
            f"--out {out} holds rows of a run with other settings ({'; '.join(diff)}); "
            f"rerun with the same settings to resume, or choose another --out")


def load_data_and_model(data, model, dev):
    """(x, y, net, info): the data set and checkpoint of a certify run, checked against each
    other (input shape, label range); UsageError naming --data/--model otherwise."""
    from ..datasets import load_dataset
    from ..models import load_checkpoint
    try:
        x, y = load_dataset(data)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--data: {exc}") from None
    try:
        net, info = load_checkpoint(model, device=dev)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--model: {exc}") from None
    shape = tuple(info["input_shape"])
    if tuple(x.shape[1:]) != shape:
        if math.prod(x.shape[1:]) != math.prod(shape):
            raise UsageError(f"--data points have shape {tuple(x.shape[1:])} but the model expects "
                             f"inputs of shape {shape}; give data and a model that match")
        x = x.reshape(len(x), *shape)
    num_classes = int(info["num_classes"])
    if len(y) and int(y.max()) >= num_classes:
        raise UsageError(f"--data has label {int(y.max())} but the model has only {num_classes} "
                         f"classes (labels 0..{num_classes - 1})")
    return x, y, net, info


def certify_file(data: str, model: str, noise: Noise, norm, out: str, *, n0: int = 100,
                 n: int = 100_000, alpha: float = 0.001, batch: int = 1000, skip: int = 1,
                 max_idx: int = -1, seed: int = 0, multiclass: bool = False,
                 radius_samples: int = 100_000, device: str = "auto", progress: bool = True,
                 smooth=None, radius_table=None, force_resume: bool = False,
                 method: str = "auto") -> CertifySummary:
    """Certify inputs ``0, skip, 2 skip, ...`` (below ``max_idx`` unless it is -1) of ``data``
    with the checkpoint ``model`` and append Cohen et al.'s rows to ``out``, resuming it.

    Each row is written with flush + fsync as soon as it is computed; rows already in ``out``
    are kept and skipped, an unfinished last line is dropped; a line no run of these settings on
    ``data`` could have written raises UsageError naming it. The settings are kept in
    ``out + '.params.json'``; resuming with different ones raises UsageError, and so does
    resuming rows whose record is missing or unreadable unless ``force_resume`` (the rows are
    then taken to be of these settings, which are recorded). ``smooth``: a
    ready smoothed classifier (anything with ``certify`` and a ``seed`` attribute) to use
    instead of building ``unicr_fast.Smooth`` from the checkpoint. ``radius_table``: a
    ``RadiusTable`` or its path (built there first if missing, ``cli_table.certify_table``),
    whose radii the Smooth uses; its sha256 is part of the settings. ``method``: the radius
    engine ("auto", "exact", "mc"; ``radius.resolve_method``) of the Smooth built here, and of a
    table built here; an explicit one must be the engine of a given table. The engine the radii
    come from is part of the settings (``"method"``). A ready ``smooth`` must use ``method``
    itself (it is recorded, not applied)."""
    from tqdm.auto import tqdm

    p = check_norm(norm)
    engine = check_method(noise, method)     # UsageError naming --method before any work
    dev = _device(device)
    x, y, net, info = load_data_and_model(data, model, dev)
    noise = bind_to_data(noise, x)
    num_classes = int(info["num_classes"])
    table = None
    if radius_table is not None:
        table = certify_table(radius_table, noise, p, int(math.prod(x.shape[1:])), multiclass,
                              n=n, alpha=alpha, num_samples=radius_samples, seed=seed,
                              device=_engine_device(device), progress=progress, smooth=smooth,
                              method=method)

    settings = {"data": os.fspath(data), "model": os.fspath(model), "noise": _noise_record(noise),
                "norm": norm_tag(p), "n0": n0, "n": n, "alpha": alpha, "skip": skip,
                "seed": seed, "multiclass": multiclass, "radius_samples": radius_samples,
                "model_sha256": outfiles.sha256_file(model), "data_sha256": outfiles.sha256_tensors(x, y),
                "radius_table_sha256": None if table is None else table.sha256,
                "method": engine if table is None else table.engine["method"]}
    out = os.fspath(out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # One handle for the whole run: locked, read (resume), truncated, appended to.
    with open(out, "a+b") as fh:
        _lock(fh, out)
        rows = resume_rows(fh, out)
        if rows:
            _check_settings(out, settings, force_resume)
            check_rows_fit_data(rows, out, y, skip)
        done = {r[0] for r in rows}
        _write_settings(out, settings)
        if fh.tell() == 0:
            _append(fh, "\t".join(curve_mod.HEADER) + "\n")

        stop = len(x) if max_idx < 0 else min(len(x), max_idx)
        schedule = list(range(0, stop, skip))
        todo = [i for i in schedule if i not in done]
        summary = CertifySummary(out, len(schedule), len(schedule) - len(todo), 0)
        if not todo:
            return summary
        if smooth is None:
            from ..smooth import Smooth
            smooth = Smooth(net, num_classes, noise=noise, norm=p, multiclass=multiclass,
                            seed=seed, radius_samples=radius_samples,
                            radius_kwargs={"method": engine},
                            device=None if device == "auto" else dev, radius_table=table)
        with tqdm(total=len(schedule), initial=summary.resumed, unit="input", file=sys.stderr,
                  desc=os.path.basename(out), disable=not progress, dynamic_ncols=True) as bar:
            for i in todo:
                label = int(y[i])
                t0 = time.perf_counter()
                smooth.seed = point_seed(seed, i)
                pred, radius = smooth.certify(x[i].to(dev), n0, n, alpha, batch)
                seconds = time.perf_counter() - t0
                pred, radius = int(pred), float(radius)
                _append(fh, curve_mod.format_row(i, label, pred, radius, int(pred == label),
                                                 seconds))
                summary.written += 1
                bar.update(1)
    return summary


# -- subcommand handlers ----------------------------------------------------------------------
def _cmd_radius(args) -> int:
    from ..radius import certified_radius
    if args.p_b is not None:
        bad = [a for a in args.p_a if a + args.p_b > 1 + 1e-12]
        if bad:
            raise UsageError(f"--p-a {bad[0]:g} plus --p-b {args.p_b:g} exceeds 1; the runner-up "
                             f"bound must satisfy p_b <= 1 - p_a")
    noise = make_noise(args.noise, args.sigma, args.param, dim=args.dim)
    pa = args.p_a[0] if len(args.p_a) == 1 else np.array(args.p_a)
    result = certified_radius(noise, pa, args.p_b, args.norm, args.dim, args.samples, args.seed,
                              _engine_device(args.device), sound=args.sound,
                              method=args.method, return_details=args.details)
    details = np.atleast_1d(np.asarray(result, dtype=object)) if args.details else None
    radii = [d.radius for d in details] if args.details else np.atleast_1d(result)
    for k, r in enumerate(radii):
        print(repr(float(r)))
        if args.details:
            d = details[k]
            direction = np.array2string(d.direction, precision=4, max_line_width=200) \
                if d.direction is not None else "-"
            print(f"# p_a={d.p_a:g} found={d.found} evaluations={d.evaluations} "
                  f"seconds={d.seconds:.3f} direction={direction}", file=sys.stderr)
    return 0


def _cmd_certify(args) -> int:
    noise = make_noise(args.noise, args.sigma, args.param)
    check_method(noise, args.method)
    if args.n0 > args.n:
        raise UsageError(f"--n0 ({args.n0}) must not exceed --n ({args.n}): n0 draws choose the "
                         f"class, n draws bound its probability")
    # Under torchrun (WORLD_SIZE > 1) each rank certifies its shard and rank 0 merges them
    # (unicr_fast.distributed); same arguments, same rows.
    from ..distributed import certify_distributed, launched_distributed
    certify = certify_distributed if launched_distributed() else certify_file
    try:
        summary = certify(args.data, args.model, noise, args.norm, args.out, n0=args.n0,
                          n=args.n, alpha=args.alpha, batch=args.batch, skip=args.skip,
                          max_idx=args.max, seed=args.seed, multiclass=args.multiclass,
                          radius_samples=args.radius_samples, device=args.device,
                          progress=not args.no_progress, radius_table=args.radius_table,
                          force_resume=args.force_resume, method=args.method)
    except KeyboardInterrupt:
        print(f"\ninterrupted; rows written so far are kept in {args.out}: rerun the same command "
              f"to resume", file=sys.stderr)
        return 130
    if summary.written == 0 and summary.total:
        print(f"{args.out}: all {summary.total} inputs already certified", file=sys.stderr)
    elif summary.resumed:
        print(f"{args.out}: resumed after {summary.resumed} rows, wrote {summary.written}",
              file=sys.stderr)
    return 0


def _cmd_curve(args) -> int:
    try:
        results = [curve_mod.read_certify_tsv(f) for f in args.files]
        radii, rows = curve_mod.curve_table(results, args.radii)
        if args.labels is not None:
            if len(args.labels) != len(results):
                raise ValueError(f"--labels got {len(args.labels)} names for {len(results)} "
                                 f"files; give one per file")
            for row, name in zip(rows, args.labels):
                row.name = name
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(curve_mod.format_table(radii, rows), end="")
    print("certified accuracy at each radius; score = area under the curve "
          "(mean of correct x radius)")
    if args.table:
        with open(args.table, "w") as f:
            f.write(curve_mod.table_tsv(radii, rows))
    if not args.no_plot:
        out = args.out or os.path.splitext(args.files[0])[0] + ".curve.png"
        curve_mod.plot_curves(results, out, labels=args.labels)
        print(f"plot: {out}")
    return 0


def _cmd_validate(args) -> int:
    from .. import validate as val
    families = None
    if args.families:
        defaults = dict(val.DEFAULT_FAMILIES)
        families = [(f, defaults.get(f, {})) for f in args.families]
    results = val.run_validate(args.out, families=families, norms=args.norms, points=args.points,
                               sigma=args.sigma, dim=args.dim, samples=args.samples,
                               seed=args.seed, device=_engine_device(args.device),
                               progress=not args.no_progress)
    print(val.format_summary(results), end="")
    print(f"tables and plots: {args.out}")
    if args.tol is not None:
        worst = max((r.max_abs_rel_err for r in results if not math.isnan(r.max_abs_rel_err)),
                    default=0.0)
        if worst > args.tol:
            print(f"FAIL: largest relative error against a closed form {worst:.4f} > --tol "
                  f"{args.tol:g}", file=sys.stderr)
            return 1
    return 0


def _cmd_bench(args) -> int:
    from .. import benchmark
    try:
        noises = benchmark.default_noises(args.sigma, args.families)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"N = {args.samples}, d = {args.dim}, M = {args.shifts}, float32 samples; backends: "
          f"{', '.join(benchmark.backends.available_backends())}")
    rows = []
    for noise in noises:
        rows += benchmark.time_backends(noise, args.samples, args.dim, args.shifts,
                                        repeats=args.repeats)
    print(benchmark.format_timings(rows), end="")
    return 0


def _cmd_demo(args) -> int:
    from ..demo import run_demo
    if args.n0 > args.n:
        raise UsageError(f"--n0 ({args.n0}) must not exceed --n ({args.n})")
    run_demo(args.out, n_points=args.points, n=args.n, n0=args.n0, alpha=args.alpha,
             epochs=args.epochs, seed=args.seed, device=args.device, threads=args.threads,
             progress=not args.no_progress)
    return 0


# -- parser -----------------------------------------------------------------------------------
class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default where it has a meaningful one."""

    def _get_help_string(self, action):
        text, default = action.help or "", action.default
        if (action.option_strings and "default" not in text and default is not None
                and default is not False and default != [] and default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unicr", description="Certified robustness by randomized smoothing for any i.i.d. "
                                  "(or radial) noise and any l_p norm (UniCR).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = {"formatter_class": _HelpFormatter}

    r = sub.add_parser("radius", **fmt, help="certified radius for given class-probability bounds",
                       description="Print the certified l_p radius for top-class probability "
                                   ">= p_a (and runner-up <= p_b; none: binary bound).")
    _noise_args(r)
    r.add_argument("--norm", required=True, type=_norm_arg, help="l_p norm: 1, 2, inf or any p > 0")
    r.add_argument("--p-a", required=True, type=_p_a, nargs="+", metavar="P_A",
                   help="lower bound(s) of the top-class probability, in (0, 1]")
    r.add_argument("--p-b", type=_p_b, default=None,
                   help="upper bound of the runner-up probability (multiclass); default binary")
    r.add_argument("--dim", required=True, type=_int_arg(1), help="input dimension d")
    r.add_argument("--samples", type=_int_arg(1), default=100_000, help="Monte-Carlo samples N")
    r.add_argument("--seed", type=_int_arg(0), default=0, help="seed of the Monte-Carlo samples")
    r.add_argument("--sound", action="store_true",
                   help="DKW slack + fresh-sample re-check (holds w.p. >= 1 - 2e-3 over the MC)")
    r.add_argument("--method", choices=("auto", "exact", "mc"), default="auto",
                   help="radius engine: exact laws (product noise), Monte Carlo, or auto: exact "
                        "where it applies (default)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    r.add_argument("--details", action="store_true",
                   help="also print direction, evaluations and time (to stderr)")
    r.set_defaults(func=_cmd_radius)

    c = sub.add_parser("certify", **fmt, help="certify a data set; writes (and resumes) a TSV",
                       description="Certify a data set with a smoothed checkpoint; writes Cohen "
                                   "et al.'s TSV (idx label predict radius correct time). An "
                                   "existing --out is resumed: its rows are kept and skipped.")
    c.add_argument("--data", required=True,
                   help="'digits' (held-out split), 'digits:train', or a .pt/.npz file with x, y")
    c.add_argument("--model", required=True, help="checkpoint (see unicr_fast.models)")
    _noise_args(c)
    c.add_argument("--norm", type=_norm_arg, default=2.0, help="l_p norm of the radius (default 2)")
    c.add_argument("--out", required=True, help="output TSV (resumed if it exists)")
    c.add_argument("--n0", type=_int_arg(1), default=100, help="draws to choose the class")
    c.add_argument("--n", type=_int_arg(1), default=100_000, help="draws to bound its probability")
    c.add_argument("--alpha", type=_prob_open, default=0.001, help="failure probability")
    c.add_argument("--batch", type=_int_arg(1), default=1000, help="noisy copies per forward pass")
    c.add_argument("--skip", type=_int_arg(1), default=1, help="certify every SKIP-th input")
    c.add_argument("--max", type=_int_arg(-1), default=-1,
                   help="stop before input index MAX (-1: the whole data set)")
    c.add_argument("--seed", type=_int_arg(0), default=0,
                   help="noise seed; input i draws from a seed derived from (SEED, i)")
    c.add_argument("--multiclass", action="store_true",
                   help="bound the runner-up too (p_b) instead of p_b = 1 - p_a")
    c.add_argument("--radius-samples", type=_int_arg(1), default=100_000,
                   help="Monte-Carlo samples of the radius engine (non-Gaussian noise)")
    c.add_argument("--radius-table", metavar="TABLE.npz",
                   help="look radii up in this `unicr table` file (any noise, Gaussian too); "
                        "built there first (for these settings) if it does not exist")
    add_method_arg(c, "; with --radius-table the table's engine answers (auto accepts any "
                      "table, exact or mc only a table of that engine)")
    c.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    add_force_resume(c, "OUT")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_cmd_certify)

    cu = sub.add_parser("curve", **fmt, help="certified accuracy vs radius from certify TSVs",
                        description="Certified accuracy vs radius of certify TSVs: a table, the "
                                    "robustness score (area under the curve) and a PNG plot.")
    cu.add_argument("files", nargs="+", metavar="FILE.tsv")
    cu.add_argument("--out", help="PNG path (default: FIRST.curve.png beside the first file)")
    cu.add_argument("--radii", type=_float_arg(0.0, math.inf, False, True), nargs="+",
                    help="radii of the table (default: a grid up to the largest radius)")
    cu.add_argument("--labels", nargs="+", help="one name per file for the table and the legend")
    cu.add_argument("--table", help="also write the table as TSV to this path")
    cu.add_argument("--no-plot", action="store_true", help="print the table only")
    cu.set_defaults(func=_cmd_curve)

    v = sub.add_parser("validate", **fmt, help="radius engine vs closed forms, every family and norm",
                       description="Radius vs p_a for every noise family and l1, l2, linf, beside "
                                   "the closed forms; TSV tables and PNG plots.")
    v.add_argument("--out", default=os.path.join("out", "validate"), help="output directory")
    v.add_argument("--samples", type=_int_arg(100), default=20_000, help="Monte-Carlo samples N")
    v.add_argument("--dim", type=_int_arg(1), default=10, help="input dimension d")
    v.add_argument("--points", type=_int_arg(2), default=8, help="p_a grid points in [0.55, 0.999]")
    v.add_argument("--sigma", type=_positive, default=0.5, help="noise sigma of every family")
    v.add_argument("--families", type=_family_arg, nargs="+", metavar="NAME",
                   help="families to run (default: all)")
    v.add_argument("--norms", type=_norm_arg, nargs="+", default=[1.0, 2.0, math.inf],
                   help="norms to run")
    v.add_argument("--seed", type=_int_arg(0), default=0, help="seed of the Monte-Carlo samples")
    v.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    v.add_argument("--tol", type=_positive, default=None,
                   help="exit 1 if a relative error against a closed form exceeds TOL")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=_cmd_validate)

    d = sub.add_parser("demo", **fmt, help="train, certify and plot on scikit-learn's digits",
                       description="Train noise-augmented MLPs on digits (Gaussian and Laplace, "
                                   "sigma 0.25), certify the held-out split (Gaussian/l2, "
                                   "Laplace/l1) and print the certified-accuracy table.")
    d.add_argument("--out", default=os.path.join("out", "demo"), help="output directory")
    d.add_argument("--n", type=_int_arg(1), default=10_000,
                   help="noise draws per point to bound the class probability")
    d.add_argument("--n0", type=_int_arg(1), default=100, help="draws to choose the class")
    d.add_argument("--points", type=_int_arg(1), default=100, help="held-out points to certify")
    d.add_argument("--alpha", type=_prob_open, default=0.001, help="failure probability")
    d.add_argument("--epochs", type=_int_arg(1), default=40, help="training epochs per model")
    d.add_argument("--seed", type=_int_arg(0), default=0, help="training and noise seed")
    d.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    d.add_argument("--threads", type=_int_arg(1), default=1,
                   help="torch threads (default 1: fastest for these tiny models)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_demo)

    bn = sub.add_parser("bench", **fmt, help="kernel throughput of each backend vs the torch reference",
                        description="Times one radius-engine step (log-ratios of M shifts over N "
                                    "samples, then threshold statistics) on every available "
                                    "backend against the pure-torch reference in the same run, "
                                    "and checks their outputs agree. Full benchmarks: "
                                    "python -m pytest bench --benchmark-only -s")
    bn.add_argument("--families", nargs="+", type=_family_arg, metavar="NAME",
                    help="noise families (default: every i.i.d. compiled family)")
    bn.add_argument("--samples", type=_int_arg(1), default=4000, help="samples N")
    bn.add_argument("--dim", type=_int_arg(1), default=1024, help="dimension d")
    bn.add_argument("--shifts", type=_int_arg(1), default=8, help="shifts M per call")
    bn.add_argument("--sigma", type=_positive, default=0.5, help="noise sigma")
    bn.add_argument("--repeats", type=_int_arg(1), default=3,
                    help="timed calls per compiled backend (the best is reported)")
    bn.set_defaults(func=_cmd_bench)
    add_scale_commands(sub, fmt)
    add_optimize_commands(sub, fmt)
    add_table_command(sub, fmt)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        sub = args.command
        print(f"unicr {sub}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
