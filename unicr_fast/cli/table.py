"""``unicr table`` (build a radius table) and the ``--radius-table`` option of ``unicr certify``.

``cli.build_parser`` calls ``add_table_command(sub, fmt)``; ``cli.certify_file`` and
``distributed.certify_distributed`` call ``certify_table``. This module imports ``cli`` only
inside functions (``cli`` imports this one).
"""
from __future__ import annotations

import os
import sys

from ..radius.cache import LogitGrid
from ..radius.table import (DEFAULT_ALPHA, DEFAULT_CHUNK, DEFAULT_N, DEFAULT_STEP, DEFAULT_STEP_B,
                           RadiusTable, reachable_p_max)


def certify_table(path, noise, norm: float, dim: int, multiclass: bool, *, n: int, alpha: float,
                  num_samples: int, seed: int, device: str, progress: bool, smooth=None,
                  build_missing: bool = True, method: str = "auto") -> RadiusTable:
    """The table of a certify run: ``path`` (or a RadiusTable) loaded and checked against the
    run (noise, norm, input dim, multiclass); if the file is missing or unfinished and
    ``build_missing``, built for the run (p_max reachable with its n and alpha; its radius
    samples, seed and ``method``) and saved there first. UsageError naming --radius-table
    otherwise, for a run given a ready ``smooth`` (the table is for the Smooth certify builds),
    and for a table of another engine than an explicit ``method`` ("auto" takes the table's)."""
    from . import UsageError, check_method
    if smooth is not None:
        raise UsageError("a radius table is for the Smooth that certify builds; a ready smoothed "
                         "classifier brings its own radii (Smooth.use_radius_table)")
    try:
        table = path if isinstance(path, RadiusTable) else _read_or_build(
            os.fspath(path), noise, norm, dim, multiclass, build_missing, n=n, alpha=alpha,
            num_samples=num_samples, seed=seed, method=method, device=device, progress=progress)
        table.check_matches(noise, norm, dim, multiclass)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--radius-table: {exc}") from None
    if method != "auto" and table.engine["method"] != check_method(noise, method):
        name = "" if isinstance(path, RadiusTable) else f" {os.fspath(path)}"
        raise UsageError(f"--radius-table{name} holds radii of the {table.engine['method']} "
                         f"engine but --method is {method}; give a table built with --method "
                         f"{method} (unicr table), or --method auto to use this one")
    top = table.settings["grid"]["k_hi"]
    reach = reachable_p_max(n, alpha, multiclass)
    if LogitGrid(table.settings["grid"]["step"]).index_down(reach) > top:
        print(f"warning: --radius-table tops out at p_a = {table.p_a[-1]:.6g} but this run "
              f"reaches {reach:.6g} (n={n}, alpha={alpha:g}); inputs above the top get its "
              f"radius there", file=sys.stderr)
    return table


def _read_or_build(path: str, noise, norm, dim, multiclass, build_missing,
                   **build) -> RadiusTable:
    """The finished table in ``path``; with ``build_missing`` a missing or unfinished one is
    built (resumed) there first."""
    if not build_missing:
        return RadiusTable.load(path)
    found = RadiusTable.load(path, finished=False) if os.path.exists(path) else None
    if found is not None and found.complete:
        return found
    if found is not None and build.get("method") == "auto":   # auto resumes the table's engine
        build["method"] = found.engine["method"]
    print(f"--radius-table {path}: {'resuming' if found else 'building'} it for this run",
          file=sys.stderr)
    return RadiusTable.build(noise, norm, dim, multiclass=multiclass, path=path, **build)


def _cmd_table(args) -> int:
    from . import UsageError, _engine_device, make_noise
    noise = make_noise(args.noise, args.sigma, args.param, dim=args.dim)
    try:
        table = RadiusTable.build(noise, args.norm, args.dim, multiclass=args.multiclass,
                                  step=args.step, step_b=args.step_b, p_min=args.p_min,
                                  p_max=args.p_max, n=args.n, alpha=args.alpha,
                                  num_samples=args.samples, seed=args.seed, method=args.method,
                                  chunk=args.chunk, device=_engine_device(args.device),
                                  path=args.out, progress=not args.no_progress)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print(f"\ninterrupted; the radii computed so far are kept in {args.out}: rerun the same "
              f"command to resume", file=sys.stderr)
        return 130
    print(f"{args.out}: {table!r}")
    print(f"radius at p_a = {table.p_a[-1]:.6g}: {table.radii[-1]:.6g}; sha256 {table.sha256}")
    return 0


def add_table_command(sub, fmt) -> None:
    """Add ``table`` to the ``unicr`` subparsers ``sub``."""
    from . import _float_arg, _int_arg, _noise_args, _norm_arg, _positive, _prob_open

    t = sub.add_parser(
        "table", **fmt, help="build a radius table (radius vs p_a on a grid) for certify",
        description="Certified radius vs p_a (multiclass: and p_b) on a logit grid for one "
                    "(noise, norm, dim), saved to .npz; `unicr certify --radius-table` and "
                    "Smooth(radius_table=...) then look radii up (rounding p_a down, p_b up) "
                    "instead of searching per input. Resumes an interrupted build in --out.")
    _noise_args(t)
    t.add_argument("--norm", required=True, type=_norm_arg, help="l_p norm: 1, 2, inf or any p > 0")
    t.add_argument("--dim", required=True, type=_int_arg(1), help="input dimension d")
    t.add_argument("--out", required=True, metavar="TABLE.npz",
                   help="the table file (an unfinished build there is resumed)")
    t.add_argument("--multiclass", action="store_true",
                   help="a 2-D table over (p_a, p_b) for certify --multiclass")
    t.add_argument("--step", type=_positive, default=DEFAULT_STEP,
                   help="logit step of the p_a grid (radius lost <= step x dR/dlogit)")
    t.add_argument("--step-b", type=_positive, default=DEFAULT_STEP_B,
                   help="logit step of the p_b grid (multiclass)")
    t.add_argument("--n", type=_int_arg(1), default=None,
                   help=f"draws of the certify run: p_a reaches at most the Clopper-Pearson bound "
                        f"when all hit (default {DEFAULT_N})")
    t.add_argument("--alpha", type=_prob_open, default=None,
                   help=f"failure probability of the certify run (default {DEFAULT_ALPHA})")
    t.add_argument("--p-max", type=_float_arg(0.5, 1.0, True, True), default=None,
                   help="top of the p_a grid, instead of --n/--alpha")
    t.add_argument("--p-min", type=_float_arg(0.0, 1.0, True, True), default=0.5,
                   help="bottom of the p_a grid (below 1/2 only multiclass certifies)")
    t.add_argument("--samples", type=_int_arg(1), default=100_000, help="Monte-Carlo samples N")
    t.add_argument("--seed", type=_int_arg(0), default=0, help="seed of the Monte-Carlo samples")
    t.add_argument("--method", choices=("auto", "exact", "mc"), default="auto",
                   help="radius engine: exact laws (product noise), Monte Carlo (sound mode), "
                        "or auto: exact where it applies")
    t.add_argument("--chunk", type=_int_arg(1), default=DEFAULT_CHUNK,
                   help="p_a points per engine call (and per checkpoint)")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_table)
