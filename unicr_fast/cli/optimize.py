"""``unicr copt`` and ``unicr iopt``: noise optimisation from the command line (see optimize.py).

``copt`` runs C-OPT on the digits demo: the digits train split is cut into a training and a
validation part, the demo MLP is trained with every noise of a grid, the validation part is
certified and every setting scored. Outputs under ``--out``: ``copt.tsv`` (settings and scores,
resumed by a rerun), ``copt.png``, ``best.json``, ``certify/<setting>.tsv`` (Cohen's TSV per
setting, for ``unicr curve``) and ``models/<setting>.pt`` (checkpoints ``unicr iopt``/``certify``
read).

``iopt`` runs I-OPT over a data set with a checkpoint: the same rows as ``unicr certify`` (so
``unicr curve`` reads them, and a rerun resumes), plus ``OUT.iopt.tsv`` with the setting chosen
for every input (written just before the input's row; a kill between the two writes leaves a row
there that the rerun writes again, identically: inputs draw from their own seeds) and
``OUT.iopt.json`` with the I-OPT settings a resumed run must repeat.

The parser pieces of cli.py are imported inside ``add_optimize_commands``: cli.py imports this
module at its top, so importing cli here at module level would be circular.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

PARAM_COLUMNS_IOPT = ("idx", "sigma", "beta", "start_select_radius", "select_radius",
                      "evaluations", "steps", "p_a")


def add_optimize_commands(sub, fmt) -> None:
    """Add the ``copt`` and ``iopt`` subcommands to ``unicr``'s subparsers."""
    from .. import cli

    c = sub.add_parser(
        "copt", **fmt, help="C-OPT: best noise for training + certification (digits demo)",
        description="C-OPT on digits: train the demo MLP with every noise of a grid (default "
                    "general_normal, sigma x beta), certify a validation split cut from the "
                    "digits train split (the test split is never used) and score each setting "
                    "by the robustness score (area under the certified-accuracy curve). Writes "
                    "OUT/copt.tsv (resumed by a rerun: scored settings are skipped), copt.png, "
                    "best.json, certify/*.tsv and models/*.pt.")
    c.add_argument("--out", default=os.path.join("out", "copt"), help="output directory")
    c.add_argument("--family", type=cli._family_arg, default="general_normal", metavar="NAME",
                   help="noise family of the grid")
    c.add_argument("--sigmas", type=cli._positive, nargs="+", default=[0.25, 0.5],
                   metavar="SIGMA", help="sigma values of the grid")
    c.add_argument("--betas", type=cli._positive, nargs="+", default=None, metavar="BETA",
                   help="beta values of the grid (general_normal only; default 1 1.5 2)")
    c.add_argument("--param", action="append", type=cli._param_arg, default=[],
                   metavar="KEY=VALUE", help="fixed extra parameter of another family, repeatable")
    c.add_argument("--start", type=cli._param_arg, action="append", default=[],
                   metavar="KEY=VALUE", help="the start setting, e.g. --start sigma=0.25 "
                   "--start beta=2; must be in the grid (default: the Gaussian one, beta=2, at "
                   "the first sigma where the grid has it, else the first setting)")
    c.add_argument("--norm", type=cli._norm_arg, default=2.0, help="l_p norm of the radii")
    c.add_argument("--points", type=cli._int_arg(1), default=100,
                   help="validation points certified per setting")
    c.add_argument("--val-fraction", type=cli._prob_open, default=0.25,
                   help="fraction of the digits train split held out for validation")
    c.add_argument("--epochs", type=cli._int_arg(1), default=20, help="training epochs per setting")
    c.add_argument("--n0", type=cli._int_arg(1), default=100, help="draws to choose the class")
    c.add_argument("--n", type=cli._int_arg(1), default=1000,
                   help="draws to bound its probability")
    c.add_argument("--alpha", type=cli._prob_open, default=0.001, help="failure probability")
    c.add_argument("--batch", type=cli._int_arg(1), default=1000, help="noisy copies per forward")
    c.add_argument("--multiclass", action="store_true", help="bound the runner-up too (p_b)")
    c.add_argument("--radius-samples", type=cli._int_arg(1), default=5000,
                   help="Monte-Carlo samples of the radius engine (non-Gaussian settings)")
    c.add_argument("--cache-step", type=cli._positive, default=0.05,
                   help="logit step of the radius cache (p_a rounded down onto it)")
    c.add_argument("--seed", type=cli._int_arg(0), default=0, help="training, split and noise seed")
    cli.add_method_arg(c)
    c.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    c.add_argument("--threads", type=cli._int_arg(1), default=1, help="torch threads")
    cli.add_force_resume(c, "OUT/copt.tsv")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.set_defaults(func=_cmd_copt)

    i = sub.add_parser(
        "iopt", **fmt, help="I-OPT: per-input noise search, then a fresh certificate",
        description="I-OPT: for every input, hill-climb the noise parameters (sigma; and beta "
                    "for general_normal) from the start setting --noise/--sigma/--param to "
                    "maximise the certified radius of the class predicted at the start, on "
                    "selection draws of its own; then certify on fresh draws at the chosen "
                    "setting. Writes Cohen's TSV (as unicr certify; resumed by a rerun) and "
                    "OUT.iopt.tsv with the chosen settings.")
    i.add_argument("--data", required=True,
                   help="'digits' (held-out split), 'digits:train', or a .pt/.npz file with x, y")
    i.add_argument("--model", required=True, help="checkpoint (see unicr_fast.models)")
    cli._noise_args(i)
    i.add_argument("--norm", type=cli._norm_arg, default=2.0, help="l_p norm of the radius")
    i.add_argument("--out", required=True, help="output TSV (resumed if it exists)")
    i.add_argument("--optimize", nargs="+", choices=["sigma", "beta"], default=None,
                   help="parameters to climb (default: sigma beta for general_normal, else sigma)")
    i.add_argument("--sigma-factor", type=cli._float_arg(1.0, math.inf, True, True),
                   default=1.25, help="sigma moves: x or / this factor")
    i.add_argument("--sigma-range", type=cli._positive, nargs=2, default=None,
                   metavar=("LO", "HI"), help="sigma bounds (default: start/8 .. start*4)")
    i.add_argument("--beta-step", type=cli._positive, default=0.25, help="beta moves: +/- this")
    i.add_argument("--beta-range", type=cli._positive, nargs=2, default=None,
                   metavar=("LO", "HI"), help="beta bounds (default: 1 .. 3, widened to the start)")
    i.add_argument("--max-steps", type=cli._int_arg(0), default=10, help="moves of the climb")
    i.add_argument("--n-select", type=cli._int_arg(1), default=None,
                   help="selection draws per evaluated setting (default max(100, n/10))")
    i.add_argument("--n0", type=cli._int_arg(1), default=100, help="draws to choose the class")
    i.add_argument("--n", type=cli._int_arg(1), default=10_000,
                   help="fresh draws to bound its probability at the chosen setting")
    i.add_argument("--alpha", type=cli._prob_open, default=0.001, help="failure probability")
    i.add_argument("--batch", type=cli._int_arg(1), default=1000, help="noisy copies per forward")
    i.add_argument("--skip", type=cli._int_arg(1), default=1, help="certify every SKIP-th input")
    i.add_argument("--max", type=cli._int_arg(-1), default=-1,
                   help="stop before input index MAX (-1: the whole data set)")
    i.add_argument("--seed", type=cli._int_arg(0), default=0,
                   help="noise seed; input i draws from a seed derived from (SEED, i)")
    i.add_argument("--multiclass", action="store_true", help="bound the runner-up too (p_b)")
    i.add_argument("--radius-samples", type=cli._int_arg(1), default=20_000,
                   help="Monte-Carlo samples of the radius engine (non-Gaussian settings)")
    i.add_argument("--cache-step", type=cli._positive, default=0.02,
                   help="logit step of the radius cache (p_a rounded down onto it)")
    cli.add_method_arg(i)
    i.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    cli.add_force_resume(i, "OUT")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    i.set_defaults(func=_cmd_iopt)


# -- copt -------------------------------------------------------------------------------------
def _cmd_copt(args) -> int:
    import torch

    from .. import cli
    from .. import optimize as opt
    from ..demo import MLP_KWARGS
    from ..models import save_checkpoint

    if args.n0 > args.n:
        raise cli.UsageError(f"--n0 ({args.n0}) must not exceed --n ({args.n})")
    if args.betas is not None and args.family != "general_normal":
        raise cli.UsageError(f"--betas applies to general_normal only, not '{args.family}'; "
                             f"give its parameters with --param")
    fixed = dict(args.param)
    if "sigma" in fixed:
        raise cli.UsageError("give sigma values with --sigmas, not --param sigma=...")
    if "dim" in cli.family_params(args.family):   # radial: the dimension of a digits point
        if "dim" in fixed:
            raise cli.UsageError("the noise's dim is the input's (64 for digits), not --param dim")
        from ..datasets import DIGITS_DIM
        fixed["dim"] = DIGITS_DIM
    betas = None
    if args.family == "general_normal" and "beta" not in fixed:
        betas = args.betas if args.betas is not None else [1.0, 1.5, 2.0]
    try:
        noises = opt.noise_grid(args.family, args.sigmas, betas, params=fixed)
    except (TypeError, ValueError) as exc:
        raise cli.UsageError(f"bad grid: {exc}") from None
    start = next((nz for nz in noises if nz.sigma == noises[0].sigma
                  and nz.params.get("beta") == 2.0), None)
    if args.start:
        want = dict(args.start)
        start = next((nz for nz in noises if set(want) <= set(nz.params) and all(
            math.isclose(nz.params[k], v, rel_tol=1e-12) for k, v in want.items())), None)
        if start is None:
            raise cli.UsageError(f"--start {want} is not a setting of the grid; C-OPT takes the "
                                 f"argmax over a grid that contains the start")
    # One family, one engine: passed resolved, so copt.tsv.params.json's radius_kwargs names it.
    engine = {cli.check_method(nz, args.method) for nz in noises}.pop()
    dev = cli._device(args.device)
    out = args.out
    table = os.path.join(out, "copt.tsv")
    certify_dir = os.path.join(out, "certify")
    models_dir = os.path.join(out, "models")

    saved = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        try:
            x_fit, y_fit, x_val, y_val = opt.digits_split(args.val_fraction, args.seed)
        except ImportError as exc:
            raise cli.UsageError(str(exc)) from None
        x_val, y_val = x_val[:args.points], y_val[:args.points]
        print(f"digits: training on {len(x_fit)} points of the train split, certifying "
              f"{len(x_val)} validation points per setting (n0={args.n0}, n={args.n}, "
              f"alpha={args.alpha}, l{cli.norm_tag(args.norm)}); {len(noises)} settings",
              file=sys.stderr)
        train_fn = opt.digits_train_fn(x_fit, y_fit, epochs=args.epochs, seed=args.seed,
                                       device=dev)

        def save(noise, model):
            save_checkpoint(os.path.join(models_dir, opt.noise_tag(noise) + ".pt"), model, "mlp",
                            MLP_KWARGS, 10, [1, 8, 8],
                            meta={"noise": noise.name, **noise.params, "epochs": args.epochs,
                                  "seed": args.seed, "trained_on": "digits train minus "
                                  f"validation ({args.val_fraction:g})"})

        settings = {"family": args.family, "epochs": args.epochs, "points": len(x_val),
                    "val_fraction": args.val_fraction, "model": "digits demo MLP"}
        t0 = time.perf_counter()
        try:
            result = opt.copt(train_fn, x_val, y_val, noises, start=start, norm=args.norm,
                              n0=args.n0, n=args.n, alpha=args.alpha, batch_size=args.batch,
                              multiclass=args.multiclass, seed=args.seed,
                              radius_samples=args.radius_samples, cache_step=args.cache_step,
                              radius_kwargs={"method": engine}, num_classes=10, out=table,
                              certify_dir=certify_dir, settings=settings, on_model=save,
                              progress=not args.no_progress, force_resume=args.force_resume)
        except KeyboardInterrupt:
            print(f"\ninterrupted; settings scored so far are kept in {table}: rerun the same "
                  f"command to resume", file=sys.stderr)
            return 130
        except ValueError as exc:
            raise cli.UsageError(str(exc)) from None
    finally:
        torch.set_num_threads(saved)

    curves = {opt.noise_tag(r.noise): os.path.join(certify_dir, opt.noise_tag(r.noise) + ".tsv")
              for r in result.rows}
    curves = {k: v for k, v in curves.items() if os.path.isfile(v)}
    png = opt.plot_copt(result.rows, os.path.join(out, "copt.png"), curves=curves,
                        title=f"C-OPT on digits (validation), l{cli.norm_tag(args.norm)}")
    best = result.best
    with open(os.path.join(out, "best.json"), "w") as f:
        json.dump({"noise": best.noise.name, **best.noise.params, "score": best.score,
                   "accuracy": best.accuracy, "start": {"noise": result.start.noise.name,
                                                        **result.start.noise.params,
                                                        "score": result.start.score},
                   "checkpoint": os.path.join(models_dir, opt.noise_tag(best.noise) + ".pt")},
                  f, indent=1)
        f.write("\n")
    print(_format_rows(result.rows, best), end="")
    if result.resumed:
        print(f"(resumed: {result.resumed} of {len(result.rows)} settings read back from "
              f"{table})", file=sys.stderr)
    print(f"best: {opt.noise_tag(best.noise)}  score {best.score:.4f} (start "
          f"{opt.noise_tag(result.start.noise)}: {result.start.score:.4f}); "
          f"{time.perf_counter() - t0:.1f}s")
    print(f"table: {table}  plot: {png}  best: {os.path.join(out, 'best.json')}")
    return 0


def _format_rows(rows, best) -> str:
    from .. import optimize as opt
    w = max(len(opt.noise_tag(r.noise)) for r in rows)
    lines = [f"{'setting':<{w}}  {'score':>8}  {'acc':>6}  {'abst':>4}  {'time':>7}"]
    for r in rows:
        mark = "  <- best" if r is best else ""
        lines.append(f"{opt.noise_tag(r.noise):<{w}}  {r.score:>8.4f}  {100 * r.accuracy:>5.1f}%"
                     f"  {r.abstain:>4}  {r.seconds:>6.1f}s{mark}")
    return "\n".join(lines) + "\n"


# -- iopt -------------------------------------------------------------------------------------
class _Recorder:
    """Hands certify_file an optimizer that also appends the chosen setting of every input to
    the side table (keyed back from the per-input seed certify_file sets)."""

    def __init__(self, optimizer, side_fh, todo, point_seed):
        self.optimizer, self.fh = optimizer, side_fh
        self.todo, self.point_seed = list(todo), point_seed

    def _idx(self) -> int:
        """The input being certified: certify_file visits ``todo`` in order, setting the seed
        point_seed(SEED, idx) before each one."""
        seed = self.optimizer.seed
        while self.todo:
            idx = self.todo.pop(0)
            if self.point_seed(idx) == seed:
                return idx
        return -1

    @property
    def seed(self):
        return self.optimizer.seed

    @seed.setter
    def seed(self, value):
        self.optimizer.seed = value

    def certify(self, x, n0, n, alpha, batch_size):
        label, radius = self.optimizer.certify(x, n0, n, alpha, batch_size)
        r = self.optimizer.last
        idx = self._idx()
        beta = r.noise.params.get("beta")
        line = "\t".join([str(idx), f"{r.noise.sigma:.6g}", "-" if beta is None else f"{beta:g}",
                          f"{r.start_select_radius:.6g}", f"{r.select_radius:.6g}",
                          str(r.evaluations), str(r.steps), f"{r.p_a:.6g}"]) + "\n"
        self.fh.write(line)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return label, radius


def _cmd_iopt(args) -> int:
    from .. import cli, outfiles
    from .. import curve as curve_mod
    from ..datasets import load_dataset
    from ..models import load_checkpoint
    from ..optimize import InputOptimizer
    from ..smooth import Smooth

    noise = cli.make_noise(args.noise, args.sigma, args.param)
    engine = cli.check_method(noise, args.method)
    if args.n0 > args.n:
        raise cli.UsageError(f"--n0 ({args.n0}) must not exceed --n ({args.n})")
    dev = cli._device(args.device)
    try:
        net, info = load_checkpoint(args.model, device=dev)
        x, _ = load_dataset(args.data)
    except (FileNotFoundError, ValueError) as exc:
        raise cli.UsageError(str(exc)) from None
    noise = cli.bind_to_data(noise, x)
    smooth = Smooth(net, int(info["num_classes"]), noise=noise, norm=args.norm,
                    multiclass=args.multiclass, seed=args.seed,
                    radius_samples=args.radius_samples, radius_kwargs={"method": engine},
                    device=None if args.device == "auto" else dev)
    try:
        optimizer = InputOptimizer(smooth, params=args.optimize, sigma_factor=args.sigma_factor,
                                   sigma_range=args.sigma_range, beta_step=args.beta_step,
                                   beta_range=args.beta_range, max_steps=args.max_steps,
                                   n_select=args.n_select, cache_step=args.cache_step)
    except (TypeError, ValueError) as exc:
        raise cli.UsageError(str(exc)) from None

    # I-OPT settings beside certify's own .params.json: a resumed run must use the same ones.
    record = {"optimize": list(optimizer.params), "sigma_factor": optimizer.sigma_factor,
              "sigma_range": list(optimizer.sigma_range), "beta_step": optimizer.beta_step,
              "beta_range": None if optimizer.beta_range is None else list(optimizer.beta_range),
              "max_steps": optimizer.max_steps, "n_select": optimizer.n_select,
              "cache_step": optimizer.radii.step}
    out = os.fspath(args.out)
    rec_path = out + ".iopt.json"
    done = {r[0] for r in _resumable_rows(out)}
    has_rows = bool(done)
    if has_rows:
        try:
            diff = outfiles.settings_differences(out, record, force=args.force_resume,
                                                 flag="--force-resume", suffix=".iopt.json")
        except ValueError as exc:
            raise cli.UsageError(f"--out {exc}") from None
        if diff:
            raise cli.UsageError(f"--out {out} holds rows of an I-OPT run with other settings "
                                 f"({'; '.join(diff)}); rerun with the same settings to resume, "
                                 f"or choose another --out")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(rec_path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    side = out + ".iopt.tsv"
    if not has_rows or not os.path.isfile(side):
        with open(side, "w") as f:
            f.write("\t".join(PARAM_COLUMNS_IOPT) + "\n")
    stop = len(x) if args.max < 0 else min(len(x), args.max)
    todo = [i for i in range(0, stop, args.skip) if i not in done]
    with open(side, "a") as fh:
        recorder = _Recorder(optimizer, fh, todo, lambda i: cli.point_seed(args.seed, i))
        try:
            summary = cli.certify_file(args.data, args.model, noise, args.norm, out, n0=args.n0,
                                       n=args.n, alpha=args.alpha, batch=args.batch,
                                       skip=args.skip, max_idx=args.max, seed=args.seed,
                                       multiclass=args.multiclass,
                                       radius_samples=args.radius_samples, device=args.device,
                                       progress=not args.no_progress, smooth=recorder,
                                       force_resume=args.force_resume, method=args.method)
        except KeyboardInterrupt:
            print(f"\ninterrupted; rows written so far are kept in {out}: rerun the same command "
                  f"to resume", file=sys.stderr)
            return 130
    res = curve_mod.read_certify_tsv(out)
    if len(res):
        print(f"{out}: {len(res)} inputs, {int((res.predict == -1).sum())} abstained, certified "
              f"accuracy at r=0 {100 * res.correct.mean():.1f}%, robustness score "
              f"{curve_mod.robustness_score(res):.4f}; chosen settings in {side}")
    if summary.resumed:
        print(f"{out}: resumed after {summary.resumed} rows, wrote {summary.written}",
              file=sys.stderr)
    return 0


def _resumable_rows(path: str):
    """The rows certify_file would resume in ``path`` (none if it is missing); UsageError for a
    file it would refuse, before the side files are touched."""
    from .. import cli
    if not os.path.isfile(path):
        return []
    with open(path, "a+b") as fh:
        cli._lock(fh, path)
        return cli.resume_rows(fh, path)
