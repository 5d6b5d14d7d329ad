"""``unicr attack`` and ``unicr merge``: the scale-out and attack-check subcommands.

``cli.build_parser`` calls ``add_scale_commands(sub, fmt)``. Distributed certification itself is
``unicr certify`` under torchrun (``unicr_fast.distributed``); ``unicr merge`` merges its shard
files by hand. This module imports ``cli`` only inside functions (``cli`` imports this one).
"""
from __future__ import annotations

import os


def _cmd_attack(args) -> int:
    from ..attack import attack_file
    from . import UsageError
    out = args.out or os.path.splitext(args.certified)[0] + ".attack.tsv"
    try:
        summary = attack_file(args.certified, out, model=args.model, data=args.data, n=args.n,
                              alpha=args.alpha, steps=args.steps, m=args.m,
                              step_size=args.step_size, l1_sparsity=args.l1_sparsity,
                              radius_scale=args.radius_scale, batch=args.batch,
                              inputs_per_batch=args.inputs, seed=args.seed, device=args.device,
                              progress=not args.no_progress)
    except ValueError as exc:  # bad settings found by the attack itself (norm, shapes)
        if isinstance(exc, UsageError):
            raise
        raise UsageError(str(exc)) from None
    print(summary.line())
    print(f"rows: {out}")
    return 0


def _cmd_merge(args) -> int:
    from ..distributed import merge_shards
    s = merge_shards(args.out, args.shards, force_resume=args.force_resume)
    print(f"{s.out}: {s.rows} rows ({s.added} new, {s.duplicates} duplicates dropped"
          + (f", {s.conflicts} of them with other numbers: the first kept" if s.conflicts else "")
          + ")")
    return 0


def add_scale_commands(sub, fmt) -> None:
    """Add ``attack`` and ``merge`` to the ``unicr`` subparsers ``sub``."""
    import math

    from . import _float_arg, _int_arg, _positive, _prob_open

    a = sub.add_parser(
        "attack", **fmt, help="PGD attack on the smoothed classifier within certified radii",
        description="For every certified input of a certify TSV: a PGD attack on the smoothed "
                    "classifier (SmoothAdv: noise-averaged softmax over M draws) projected onto "
                    "the l_p ball of the certified radius (l1, l2, linf), then the smoothed "
                    "prediction at the attacked point on fresh draws (N, ALPHA). Writes "
                    "idx radius attacked_prediction held and prints the fraction that held.")
    a.add_argument("certified", metavar="CERTIFY.tsv",
                   help="a certify TSV with its .params.json (noise, norm, model, data)")
    a.add_argument("--out", help="output TSV (default: CERTIFY.attack.tsv)")
    a.add_argument("--model", help="checkpoint (default: the one in the .params.json)")
    a.add_argument("--data", help="data set (default: the one in the .params.json)")
    a.add_argument("--n", type=_int_arg(1), default=10_000,
                   help="fresh draws of the prediction at the attacked point")
    a.add_argument("--alpha", type=_prob_open, default=None,
                   help="failure probability of that prediction (default: the certify alpha)")
    a.add_argument("--steps", type=_int_arg(1), default=20, help="PGD steps")
    a.add_argument("--m", type=_int_arg(1), default=16, help="noise draws per PGD step")
    a.add_argument("--step-size", type=_positive, default=2.5,
                   help="step length in units of RADIUS / STEPS")
    a.add_argument("--l1-sparsity", type=_float_arg(0.0, 1.0, True, False), default=0.05,
                   help="l1 steps move this fraction of the coordinates (largest gradients)")
    a.add_argument("--radius-scale", type=_float_arg(0.0, math.inf, False, True), default=1.0,
                   help="attack at this multiple of the certified radius (e.g. 10: must flip some)")
    a.add_argument("--batch", type=_int_arg(1), default=1000, help="noisy copies per forward pass")
    a.add_argument("--inputs", type=_int_arg(1), default=16, help="inputs attacked together")
    a.add_argument("--seed", type=_int_arg(0), default=0, help="seed of the attack's draws")
    a.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(func=_cmd_attack)

    g = sub.add_parser(
        "merge", **fmt, help="merge the shard TSVs of a distributed certify run",
        description="Merge OUT.rankR.tsv shard files (written by certify under torchrun) into OUT: "
                    "one row per idx, sorted; rows already in OUT are kept. Idempotent. Files "
                    "whose settings records (.params.json) differ are refused, and so are files "
                    "with rows but no readable record unless --force-resume.")
    g.add_argument("out", metavar="OUT.tsv", help="the --out of the distributed certify run")
    g.add_argument("--shards", nargs="+", metavar="SHARD.tsv",
                   help="shard files to merge (default: every OUT.rank*.tsv beside OUT)")
    g.add_argument("--force-resume", action="store_true",
                   help="also merge files (OUT or shards) whose settings record (.params.json) "
                        "is missing or unreadable: their rows are taken to be of the recorded "
                        "run's settings")
    g.set_defaults(func=_cmd_merge)
