"""Distributed certification: ``torchrun ... -m unicr_fast certify ...`` shards a data set over ranks.

Launch (any ``unicr certify`` arguments; one node with K processes, or several nodes through
torchrun's rendezvous)::

    torchrun --nproc-per-node K -m unicr_fast -- certify --data ... --out res.tsv ...
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
             --rdzv-id job1 -m unicr_fast -- certify ... --out /shared/res.tsv

``unicr certify`` sees ``WORLD_SIZE > 1`` in its environment (torchrun sets it) and calls
``certify_distributed`` instead of ``cli.certify_file``. What each rank does:

1. **Device and process group.** ``--device auto`` (or ``cuda``) is ``cuda:LOCAL_RANK`` where torch
   sees a GPU (``LOCAL_RANK mod #GPUs`` when there are more processes than GPUs), else ``cpu``;
   an explicit ``cpu`` / ``cuda:k`` is kept. ``init_process_group`` uses nccl for CUDA devices
   and gloo for the CPU. The few messages the ranks exchange (an error flag, row counts, the
   shard rows for the merge) are CPU objects and go through gloo (a gloo side group next to
   nccl), so no collective ever needs two ranks on distinct GPUs.
2. **Shard.** The schedule is certify's own (``0, skip, 2 skip, ...`` below ``--max``); rank r
   takes the schedule positions k with ``k % world_size == r`` (with ``--skip 1`` that is the
   indices i with ``i % world_size == r``). Positions, not indices, so ``--skip`` never leaves a
   rank idle.
3. **Certify the shard** into ``shard_path(out, r)`` (``res.rank{r}.tsv``), exactly as the
   single-process certify does: the file is locked, complete rows already there (and rows
   already in the merged ``out``) are skipped, an unfinished last line is dropped, each row is
   written with flush + fsync, settings are kept in ``<shard>.params.json`` and a resume with
   other settings (or, without ``--force-resume``, with none readable) or of rows that are not
   this run's (labels, indices) is refused. Input i draws its noise from the seed
   ``cli.point_seed(seed, i)`` only, so a row is the same whichever rank computes it and whenever.
4. **Merge.** After all ranks are done (the count all-reduce is the barrier), the ranks send their
   shard rows to rank 0 (gather over gloo, so node-local disks work), which writes ``out``: the
   rows already in ``out`` plus every shard row, one row per idx (the first seen wins: ``out``
   first, then ranks in order), sorted by idx, written to a temporary file and renamed over
   ``out`` (readers never see half a file). Merging again changes nothing (idempotent). The shard
   files are kept; they are what a rerun resumes (delete them once ``out`` is complete).

A rank that dies (a kill, an OOM, a lost node) leaves at most an unfinished last line in its
shard. Rerun the same command, or launch with ``torchrun --max-restarts N`` (torchrun then
restarts every worker of the group, which resume their shards): nothing is lost, nothing is
duplicated, and the merged file equals a single-process run row for row (time column aside),
because the rows do not depend on the order or the process that computed them. Restarted
workers meet in the rendezvous store that still holds the dead workers' keys; the process group
is built under a prefix fresh to each attempt (``fresh_generation_store``).

Invoke torchrun as ``torchrun ... -m unicr_fast -- certify ...``: without the ``--`` torchrun's
own parser rejects ``--n`` and ``--max`` as ambiguous abbreviations of its options.

``merge_shards(out)`` (``unicr merge OUT``) merges the shard files beside ``out`` without
torchrun, e.g. after a job that finished its shards but died before the merge.
"""
from __future__ import annotations

import contextlib
import datetime
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import curve as curve_mod
from . import outfiles
from ._validation import check_norm
from .noise import Noise

#: Test-only fault injection: ``"R:K"`` makes rank R exit abruptly (``os._exit(DIE_EXIT_CODE)``)
#: after writing K rows, leaving half a row behind -- in the first attempt of a torchrun job only
#: (``TORCHELASTIC_RESTART_COUNT`` unset or 0), so ``--max-restarts`` recovers from it.
ENV_DIE_AFTER = "UNICR_TEST_DIE_AFTER"
DIE_EXIT_CODE = 17
#: Seconds a rank waits for the others at the merge (default one day: shards are balanced, but a
#: resumed rank may have little left while the others have hours of work).
ENV_TIMEOUT = "UNICR_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int


def dist_env(environ=None) -> DistEnv:
    """Rank, world size and local rank from torchrun's environment (single process: 0, 1, 0)."""
    env = os.environ if environ is None else environ

    def read(name: str, default: int) -> int:
        text = env.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"environment variable {name}='{text}' is not an integer; torchrun "
                             f"sets it, or unset it to run a single process") from None
        if value < 0:
            raise ValueError(f"environment variable {name}={value} must be >= 0")
        return value

    world = read("WORLD_SIZE", 1)
    rank = read("RANK", 0)
    if world < 1 or rank >= world:
        raise ValueError(f"RANK={rank} / WORLD_SIZE={world} is not a valid rank of a group "
                         f"(need 0 <= RANK < WORLD_SIZE)")
    return DistEnv(rank, world, read("LOCAL_RANK", 0))


def launched_distributed(environ=None) -> bool:
    """True under torchrun with more than one process (WORLD_SIZE > 1)."""
    env = os.environ if environ is None else environ
    try:
        return int(env.get("WORLD_SIZE", "1") or 1) > 1
    except ValueError:
        return False


def shard_path(out, rank: int) -> str:
    """The shard TSV of ``rank``: ``res.tsv`` -> ``res.rank{rank}.tsv`` (other names: ``+ .rank{rank}.tsv``)."""
    out = os.fspath(out)
    root, ext = os.path.splitext(out)
    return f"{root if ext.lower() == '.tsv' else out}.rank{int(rank)}.tsv"


def find_shards(out) -> List[Tuple[int, str]]:
    """(rank, path) of the shard files of ``out`` that exist beside it, by rank."""
    out = os.fspath(out)
    stem = os.path.basename(shard_path(out, 0))[: -len("0.tsv")]
    pattern = re.compile(re.escape(stem) + r"(\d+)\.tsv")
    folder = os.path.dirname(os.path.abspath(out))
    found = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        m = pattern.fullmatch(name)
        if m:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(found)


def shard_schedule(schedule: Sequence[int], rank: int, world_size: int) -> List[int]:
    """The inputs of ``rank``: the schedule positions k with k % world_size == rank."""
    return list(schedule[rank::world_size])


def rank_device(device: str, local_rank: int) -> str:
    """The model device of a rank: auto / cuda -> cuda:LOCAL_RANK (mod the GPU count) where torch
    sees a GPU, else cpu; anything else as given (validated like certify's --device)."""
    import torch

    from .cli import _device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            return _device(device)  # raises UsageError: no CUDA device
        if local_rank >= count:
            print(f"warning: LOCAL_RANK {local_rank} but only {count} GPU(s): sharing "
                  f"cuda:{local_rank % count}", file=sys.stderr)
        device = f"cuda:{local_rank % count}"
    return _device(device)


def _timeout() -> datetime.timedelta:
    text = os.environ.get(ENV_TIMEOUT)
    seconds = DEFAULT_TIMEOUT_S
    if text:
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{ENV_TIMEOUT}='{text}' is not a number of seconds") from None
        if not seconds > 0:
            raise ValueError(f"{ENV_TIMEOUT}={text} must be > 0 seconds")
    return datetime.timedelta(seconds=seconds)


def _die_after(rank: int) -> Optional[int]:
    spec = os.environ.get(ENV_DIE_AFTER)
    if not spec or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) != 0:
        return None
    who, _, k = spec.partition(":")
    return int(k) if int(who) == rank else None


# -- rows ---------------------------------------------------------------------------------------
def rows_with_lines(text: str, path: str) -> List[Tuple[int, str]]:
    """(idx, line without newline) of every complete row of a certify TSV's text; empty text or
    an unfinished header is no rows. Raises ValueError for text that is not a certify TSV or
    holds a line certify could not have written (``curve.parse_rows``)."""
    if "\n" not in text and "\t".join(curve_mod.HEADER).startswith(text):
        return []
    rows, span = curve_mod.parse_rows(text, path)
    lines = text[:span].split("\n")[1:-1]
    return [(r[0], line.rstrip("\r")) for r, line in zip(rows, lines)]


def read_rows(path) -> List[Tuple[int, str]]:
    """``rows_with_lines`` of a file, read-only; a missing file has no rows."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    try:
        return rows_with_lines(raw.decode("utf-8"), path)
    except curve_mod.BadRow as exc:
        from .cli import UsageError
        raise UsageError(f"{path} cannot be merged or resumed: {exc}; delete that line (its input "
                         f"is certified again) or move the file away") from None
    except (UnicodeDecodeError, ValueError) as exc:
        from .cli import UsageError
        raise UsageError(f"{path} is not a certify TSV ({exc}); move it away or choose another "
                         f"--out") from None


def merge_rows(sources: Iterable[Sequence[Tuple[int, str]]]) -> Tuple[List[str], int, int]:
    """(lines sorted by idx with one per idx, duplicates dropped, duplicates that disagree).

    The first row seen for an idx wins. Two rows of one idx disagree when anything but the time
    column differs (possible only when they were computed on different devices)."""
    kept: Dict[int, str] = {}
    dupes = conflicts = 0
    for rows in sources:
        for idx, line in rows:
            if idx in kept:
                dupes += 1
                conflicts += kept[idx].split("\t")[:5] != line.split("\t")[:5]
            else:
                kept[idx] = line
    return [kept[i] for i in sorted(kept)], dupes, conflicts


def _write_tsv_atomic(path: str, lines: Sequence[str]) -> None:
    tmp = path + ".merge.tmp"
    with open(tmp, "wb") as f:
        f.write(("\t".join(curve_mod.HEADER) + "\n").encode("utf-8"))
        f.write("".join(line + "\n" for line in lines).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class MergeSummary:
    out: str
    rows: int          # rows in the merged file
    added: int         # of them, new in it (not there before the merge)
    duplicates: int    # rows dropped because their idx was already there
    conflicts: int     # of the duplicates, those whose numbers differed


def merge_into(fh, out: str, sources: Sequence[Sequence[Tuple[int, str]]]) -> MergeSummary:
    """Merge ``sources`` (lists of (idx, line)) into ``out``, whose open, locked handle ``fh``
    (``a+b``) is given: its own rows first, then the sources in order; sorted, atomic."""
    from .cli import resume_rows
    resume_rows(fh, out)               # drops an unfinished last line; raises if not a TSV
    fh.seek(0)
    existing = rows_with_lines(fh.read().decode("utf-8"), out)
    lines, dupes, conflicts = merge_rows([existing, *sources])
    _write_tsv_atomic(out, lines)
    return MergeSummary(out, len(lines), len(lines) - len(existing), dupes, conflicts)


def merge_shards(out, shards: Optional[Sequence[str]] = None,
                 force_resume: bool = False) -> MergeSummary:
    """Merge shard TSVs (default: every ``find_shards(out)``) into ``out`` (created if missing);
    refuses shards, or an ``out`` with rows, whose recorded settings differ from each other, and
    (unless ``force_resume``: their rows are then taken to be of the recorded run) those whose
    settings record is missing or unreadable. Rows cannot be checked against the data set here
    (``certify`` does that when it resumes), only for being rows certify could have written."""
    from .cli import _RESUME_KEYS, PARAMS_SUFFIX, _lock, _write_settings, resume_rows, UsageError
    out = os.fspath(out)
    paths = [os.fspath(p) for p in shards] if shards else [p for _, p in find_shards(out)]
    if not paths:
        pattern = os.path.basename(shard_path(out, 0))[: -len("0.tsv")] + "*.tsv"
        raise UsageError(f"no shard files {pattern} beside {out}; give the --out of the "
                         f"distributed certify run")
    sources = [read_rows(p) for p in paths]
    with open(out, "a+b") as fh:
        _lock(fh, out)
        has_rows = bool(resume_rows(fh, out))
        candidates = ([out] if has_rows else []) + [p for p, rows in zip(paths, sources) if rows]
        recorded = [(p, outfiles.read_settings(p)) for p in candidates]
        unrecorded = [p for p, s in recorded if s is None]
        if unrecorded and not force_resume:
            raise UsageError(f"{', '.join(unrecorded)} hold(s) rows but no readable settings "
                             f"record ({PARAMS_SUFFIX}), so they cannot be checked against the "
                             f"other files; merge with --force-resume if they come from this "
                             f"very run, or move them away")
        recorded = [(p, s) for p, s in recorded if s is not None]
        for p, s in recorded[1:]:
            diff = [k for k in _RESUME_KEYS if s.get(k) != recorded[0][1].get(k)]
            if diff:
                raise UsageError(f"{p} and {recorded[0][0]} hold rows of runs with other settings "
                                 f"({', '.join(diff)} differ); merge only shards of one run")
        summary = merge_into(fh, out, sources)
        if recorded:
            _write_settings(out, {k: v for k, v in recorded[0][1].items() if k != "shard"})
    return summary


# -- certify --------------------------------------------------------------------------------------
def fresh_generation_store(store, rank: int, world_size: int, timeout: datetime.timedelta,
                           poll_s: float = 0.01):
    """(``store`` under the prefix ``unicr_fast/generation{g}``, ``g``), with ``g`` new to this
    attempt and the same on every rank, so keys of an earlier attempt of the job are never read.

    Why not ``TORCHELASTIC_RESTART_COUNT``: with the c10d rendezvous over several nodes only the
    failed node's agent counts a restart, so the counts differ between nodes. Instead rank 0 takes
    the next value of a counter in the store; every other rank posts a random nonce and waits for
    rank 0 to answer that nonce with ``g`` (a nonce is never stale), then confirms under ``g``;
    rank 0 answers every nonce it has not answered yet until all ranks have confirmed."""
    import uuid

    import torch.distributed as dist
    base = dist.PrefixStore("unicr_fast", store)
    deadline = time.monotonic() + timeout.total_seconds()
    if rank == 0:
        gen = int(base.add("generation", 1))
        confirms = [f"confirm/{gen}/{r}" for r in range(1, world_size)]
        answered = set()
        while confirms and not base.check(confirms):
            for r in range(1, world_size):
                key = f"request/{r}"
                if base.check([key]):
                    nonce = base.get(key).decode()
                    if nonce not in answered:
                        base.set(f"answer/{nonce}", str(gen))
                        answered.add(nonce)
            if time.monotonic() > deadline:
                raise RuntimeError(f"ranks did not all join within {timeout} (set {ENV_TIMEOUT})")
            time.sleep(poll_s)
    else:
        nonce = uuid.uuid4().hex
        base.set(f"request/{rank}", nonce)
        gen = int(base.get(f"answer/{nonce}"))   # blocks until rank 0 answers (store timeout)
        base.set(f"confirm/{gen}/{rank}", "1")
    return dist.PrefixStore(f"unicr_fast/generation{gen}", store), gen


def certify_distributed(data, model, noise: Noise, norm, out, *, n0: int = 100,
                        n: int = 100_000, alpha: float = 0.001, batch: int = 1000, skip: int = 1,
                        max_idx: int = -1, seed: int = 0, multiclass: bool = False,
                        radius_samples: int = 100_000, device: str = "auto",
                        progress: bool = True, smooth=None, radius_table=None,
                        force_resume: bool = False, method: str = "auto"):
    """``cli.certify_file`` for one rank of a torchrun job (arguments and rows the same): certify
    this rank's shard, then merge every shard into ``out`` on rank 0 (module docstring).
    ``radius_table`` must exist already (every rank loads it; ``unicr table`` builds it once).

    Returns a ``cli.CertifySummary``: on rank 0 for the whole schedule (rows resumed and written by
    all ranks), on the other ranks an empty one (total 0), so only rank 0 reports."""
    import torch
    import torch.distributed as dist

    from .cli import CertifySummary, check_method

    check_method(noise, method)   # a usage error before any rendezvous
    env = dist_env()
    dev = rank_device(device, env.local_rank)
    cuda = dev.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(dev))
    timeout = _timeout()
    # env:// rendezvous: torchrun sets MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE. When
    # torchrun restarts the workers (--max-restarts), they meet again in the same key-value store,
    # where the dead workers' keys (their addresses) are still there: the group is built under a
    # fresh prefix that every rank of this attempt agrees on (fresh_generation_store).
    store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
    store, _ = fresh_generation_store(store, rank, world, timeout)
    dist.init_process_group(backend="nccl" if cuda else "gloo", store=store, rank=rank,
                            world_size=world, timeout=timeout)
    try:
        coord = dist.new_group(backend="gloo", timeout=timeout) if cuda else dist.group.WORLD
        summary, merged = _run_rank(env, coord, dev, data, model, noise, norm, os.fspath(out),
                                    dict(n0=n0, n=n, alpha=alpha, batch=batch, skip=skip,
                                         max_idx=max_idx, seed=seed, multiclass=multiclass,
                                         radius_samples=radius_samples,
                                         radius_table=radius_table, force_resume=force_resume,
                                         method=method),
                                    device, progress, smooth)
    finally:
        dist.destroy_process_group()
    if env.rank != 0:
        return CertifySummary(shard_path(out, env.rank), 0, 0, 0)
    print(f"{out}: merged {merged.rows} rows from {env.world_size} shards ({merged.added} new"
          + (f"; {merged.conflicts} duplicate rows disagreed, the first kept" if merged.conflicts
             else "") + ")", file=sys.stderr)
    return summary


def _agree(failure: Optional[BaseException], coord) -> None:
    """Collective: raise on every rank if any rank failed (so none waits for a dead peer)."""
    import torch
    import torch.distributed as dist

    from .cli import UsageError
    flag = torch.tensor([1 if failure is not None else 0], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=coord)
    if failure is not None:
        raise failure
    if int(flag.item()):
        raise UsageError("another rank failed while preparing (its error is printed above); "
                         "nothing was certified")


def _run_rank(env: DistEnv, coord, dev: str, data, model, noise, norm, out: str, kw: Dict,
              device: str, progress: bool, smooth):
    import torch
    import torch.distributed as dist
    from tqdm.auto import tqdm

    from . import cli
    from .validate import norm_tag

    shard = shard_path(out, env.rank)
    with contextlib.ExitStack() as stack:
        failure = None
        try:
            p = check_norm(norm)
            engine = cli.check_method(noise, kw["method"])
            x, y, net, info = cli.load_data_and_model(data, model, dev)
            noise = cli.bind_to_data(noise, x)
            table = None if kw["radius_table"] is None else cli.certify_table(
                kw["radius_table"], noise, p, int(math.prod(x.shape[1:])), kw["multiclass"],
                n=kw["n"], alpha=kw["alpha"], num_samples=kw["radius_samples"], seed=kw["seed"],
                device=cli._engine_device(device), progress=False, smooth=smooth,
                build_missing=False, method=kw["method"])
            settings = {"data": os.fspath(data), "model": os.fspath(model),
                        "noise": cli._noise_record(noise), "norm": norm_tag(p), "n0": kw["n0"],
                        "n": kw["n"], "alpha": kw["alpha"], "skip": kw["skip"], "seed": kw["seed"],
                        "multiclass": kw["multiclass"], "radius_samples": kw["radius_samples"],
                        "model_sha256": outfiles.sha256_file(model),
                        "data_sha256": outfiles.sha256_tensors(x, y),
                        "radius_table_sha256": None if table is None else table.sha256,
                        "method": engine if table is None else table.engine["method"]}
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            out_fh = None
            if env.rank == 0:  # held until the merge: no single-process run may write out meanwhile
                out_fh = stack.enter_context(open(out, "a+b"))
                cli._lock(out_fh, out)
            merged_rows = read_rows(out)
            if merged_rows:
                cli._check_settings(out, settings, kw["force_resume"])
                cli.check_rows_fit_data([(i, int(line.split("\t")[1])) for i, line in merged_rows],
                                        out, y, kw["skip"])
            fh = stack.enter_context(open(shard, "a+b"))
            cli._lock(fh, shard)
            own = cli.resume_rows(fh, shard)
            if own:
                cli._check_settings(shard, settings, kw["force_resume"])
                cli.check_rows_fit_data(own, shard, y, kw["skip"])
            cli._write_settings(shard, {**settings, "shard": {"rank": env.rank,
                                                              "world_size": env.world_size}})
            if fh.tell() == 0:
                cli._append(fh, "\t".join(curve_mod.HEADER) + "\n")
        except Exception as exc:  # noqa: BLE001 -- re-raised by _agree, after telling the others
            failure = exc
        _agree(failure, coord)

        stop = len(x) if kw["max_idx"] < 0 else min(len(x), kw["max_idx"])
        schedule = list(range(0, stop, kw["skip"]))
        mine = shard_schedule(schedule, env.rank, env.world_size)
        done = {r[0] for r in own} | {i for i, _ in merged_rows}
        todo = [i for i in mine if i not in done]
        resumed, written = len(mine) - len(todo), 0
        if todo and smooth is None:
            from .smooth import Smooth
            smooth = Smooth(net, int(info["num_classes"]), noise=noise, norm=p,
                            multiclass=kw["multiclass"], seed=kw["seed"],
                            radius_samples=kw["radius_samples"], radius_table=table,
                            radius_kwargs={"method": engine},
                            device=dev if dev.startswith("cuda") else
                            (None if device == "auto" else dev))
        die_after = _die_after(env.rank)
        with tqdm(total=len(mine), initial=resumed, unit="input", file=sys.stderr,
                  desc=os.path.basename(shard), dynamic_ncols=True,
                  disable=not progress or env.rank != 0) as bar:
            for i in todo:
                label = int(y[i])
                t0 = time.perf_counter()
                smooth.seed = cli.point_seed(kw["seed"], i)
                pred, radius = smooth.certify(x[i].to(dev), kw["n0"], kw["n"], kw["alpha"],
                                              kw["batch"])
                seconds = time.perf_counter() - t0
                pred, radius = int(pred), float(radius)
                cli._append(fh, curve_mod.format_row(i, label, pred, radius, int(pred == label),
                                                     seconds))
                written += 1
                bar.update(1)
                if die_after is not None and written >= die_after:
                    fh.write(f"{todo[-1]}\t{label}\t".encode())   # half a row, as a kill leaves
                    fh.flush()
                    os._exit(DIE_EXIT_CODE)

        # Barrier: every shard is complete once this returns.
        counts = torch.tensor([resumed, written], dtype=torch.int64)
        dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=coord)
        fh.seek(0)
        rows = rows_with_lines(fh.read().decode("utf-8"), shard)
        gathered = [None] * env.world_size if env.rank == 0 else None
        dist.gather_object(rows, gathered, dst=0, group=coord)
        merged = None
        if env.rank == 0:
            merged = merge_into(out_fh, out, gathered)
            cli._write_settings(out, settings)
        summary = cli.CertifySummary(out, len(schedule), int(counts[0]), int(counts[1]))
    return summary, merged
