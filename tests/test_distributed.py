"""Distributed certify (unicr_fast.distributed): sharding, merging, and real torchrun runs with two
CPU processes over gloo -- the merged TSV equals the single-process one row for row, and a rank
that dies (rerun, or torchrun --max-restarts) loses and duplicates nothing.

Each torchrun launch costs ~10 s here (two workers importing torch); the file stays under three
minutes on two busy cores. Tiny n and Gaussian noise (closed-form radius) except for one Laplace
l1 run, which exercises the radius engine on every rank."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from test_cli import HEADER
from test_cli import data_rows as rows
from test_cli import without_time as no_time

import unicr_fast as uc
from unicr_fast import cli, distributed as D

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAUSS = ["--noise", "gaussian", "--sigma", "0.25", "--norm", "2"]
# Laplace l1 through the radius engine (small N: the point is that every rank gets its numbers).
LAPLACE = ["--noise", "laplace", "--sigma", "0.25", "--norm", "1", "--radius-samples", "2000"]
LAUNCH_TIMEOUT = 150


# -- helpers -------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certify_argv(ws, out, noise=GAUSS, *extra):
    return ["certify", "--data", ws["data"], "--model", ws["model"], *noise, "--out", str(out),
            "--n0", "20", "--n", "200", "--batch", "100", "--device", "cpu", "--no-progress",
            *extra]


def torchrun(ws, argv, *, restarts=0, env=None):
    """Run ``unicr argv`` under torchrun with two CPU processes; the CompletedProcess."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(free_port()), "--max-restarts", str(restarts),
           "--monitor-interval", "0.2",
           # '--' ends torchrun's options: it would take '--n' / '--max' for abbreviations of its own
           "-m", "unicr_fast", "--", *argv]
    environ = {k: v for k, v in os.environ.items()
               if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                            D.ENV_DIE_AFTER)}
    environ.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT)


def single(ws, argv):
    """The single-process rows of ``unicr argv`` (cached per argument list), one thread as the
    torchrun workers have."""
    key = tuple(argv)
    if key not in ws["single"]:
        out = ws["root"] / f"single{len(ws['single'])}.tsv"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            assert cli.main([*argv[:argv.index("--out") + 1], str(out),
                             *argv[argv.index("--out") + 2:]]) == 0
        finally:
            torch.set_num_threads(threads)
        ws["single"][key] = no_time(rows(out))
    return ws["single"][key]


def check_shards(out, world, schedule):
    """The shards hold every scheduled idx exactly once, each in its rank's shard."""
    seen = []
    for r in range(world):
        idx = [int(row[0]) for row in rows(D.shard_path(out, r))]
        assert len(idx) == len(set(idx)), f"rank {r} shard has duplicates: {idx}"
        assert idx == sorted(idx)
        assert set(idx) <= set(D.shard_schedule(schedule, r, world))
        seen += idx
    assert sorted(seen) == list(schedule)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Nine held-out digits and two tiny MLPs (Gaussian / Laplace noise, a few epochs)."""
    from unicr_fast.datasets import digits
    from unicr_fast.demo import MLP_KWARGS, train_mlp
    from unicr_fast.models import save_checkpoint
    root = tmp_path_factory.mktemp("dist")
    x, y = digits("test")
    torch.save({"x": x[:9].clone(), "y": y[:9].clone()}, root / "nine.pt")
    x_tr, y_tr = digits("train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fam in ("gaussian", "laplace"):
            model = train_mlp(uc.noise.make(fam, sigma=0.25), x_tr, y_tr, epochs=3)
            save_checkpoint(root / f"{fam}.pt", model, "mlp", MLP_KWARGS, 10, [1, 8, 8])
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "data": str(root / "nine.pt"), "model": str(root / "gaussian.pt"),
            "laplace": str(root / "laplace.pt"), "single": {}}


# -- units (no processes) --------------------------------------------------------------------------
def test_shards_partition_the_schedule_by_position():
    schedule = list(range(0, 23, 3))           # --skip 3 --max 23
    for world in (1, 2, 3, 5, 12):
        parts = [D.shard_schedule(schedule, r, world) for r in range(world)]
        assert sorted(sum(parts, [])) == schedule
        assert all(p == [schedule[k] for k in range(r, len(schedule), world)]
                   for r, p in enumerate(parts))
    # --skip 1: rank r has the indices i with i % world == r
    assert D.shard_schedule(list(range(10)), 1, 3) == [i for i in range(10) if i % 3 == 1]


def test_shard_paths_and_env(tmp_path):
    assert D.shard_path("a/res.tsv", 3) == "a/res.rank3.tsv"
    assert D.shard_path("a/res.out", 0) == "a/res.out.rank0.tsv"
    out = tmp_path / "r.x.tsv"
    for r in (0, 1, 10):
        open(D.shard_path(out, r), "w").close()
    open(tmp_path / "r.x.rankA.tsv", "w").close()
    open(tmp_path / "other.rank0.tsv", "w").close()
    assert [r for r, _ in D.find_shards(out)] == [0, 1, 10]
    assert not D.launched_distributed({}) and not D.launched_distributed({"WORLD_SIZE": "1"})
    assert D.launched_distributed({"WORLD_SIZE": "4"})
    assert D.dist_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == D.DistEnv(2, 4, 0)
    with pytest.raises(ValueError, match="RANK"):
        D.dist_env({"WORLD_SIZE": "2", "RANK": "2"})


def _line(i, radius="0.5", t="0:00:01"):
    return f"{i}\t1\t1\t{radius}\t1\t{t}"


def test_merge_rows_sorts_and_drops_duplicates():
    a = [(4, _line(4)), (0, _line(0))]
    b = [(2, _line(2)), (4, _line(4, t="0:00:09")), (0, _line(0, radius="0.7"))]
    lines, dupes, conflicts = D.merge_rows([a, b])
    assert lines == [_line(0), _line(2), _line(4)]  # first seen wins, sorted by idx
    assert (dupes, conflicts) == (2, 1)             # the time column alone is no conflict


def test_merge_shards_is_idempotent_and_keeps_out(tmp_path):
    out = tmp_path / "m.tsv"
    (tmp_path / "m.rank0.tsv").write_text(HEADER + "\n" + _line(0) + "\n" + _line(2) + "\n3\t1")
    (tmp_path / "m.rank1.tsv").write_text(HEADER + "\n" + _line(1) + "\n")
    out.write_text(HEADER + "\n" + _line(5) + "\n" + _line(1) + "\n")
    before = out.read_text()
    with pytest.raises(cli.UsageError, match="m.tsv, .*m.rank0.tsv, .*m.rank1.tsv hold.s. rows "
                                             "but no readable settings record.*--force-resume"):
        D.merge_shards(out)            # no .params.json anywhere: nothing says they belong together
    assert out.read_text() == before
    s = D.merge_shards(out, force_resume=True)
    first = out.read_text()
    assert first == HEADER + "\n" + "".join(_line(i) + "\n" for i in (0, 1, 2, 5))
    assert (s.rows, s.added, s.duplicates) == (4, 2, 1)
    s = D.merge_shards(out, force_resume=True)
    assert out.read_text() == first and (s.added, s.duplicates) == (0, 3)


def test_merge_refuses_shards_of_other_runs(tmp_path):
    out = tmp_path / "m.tsv"
    for r, sigma in ((0, 0.25), (1, 0.5)):
        (tmp_path / f"m.rank{r}.tsv").write_text(HEADER + "\n" + _line(r) + "\n")
        settings = {k: 0 for k in cli._RESUME_KEYS}
        settings["noise"] = {"name": "gaussian", "sigma": sigma}
        (tmp_path / f"m.rank{r}.tsv{cli.PARAMS_SUFFIX}").write_text(json.dumps(settings))
    with pytest.raises(cli.UsageError, match="other settings"):
        D.merge_shards(out)
    with pytest.raises(cli.UsageError, match="no shard files"):
        D.merge_shards(tmp_path / "none.tsv")
    # a shard without its record (deleted, damaged) beside shards with one
    (tmp_path / f"m.rank1.tsv{cli.PARAMS_SUFFIX}").write_text("{")
    with pytest.raises(cli.UsageError, match="m.rank1.tsv hold.s. rows but no readable"):
        D.merge_shards(out)
    assert not out.exists() or out.read_text() == ""


def test_merge_refuses_rows_certify_cannot_have_written(tmp_path, capsys):
    out = tmp_path / "m.tsv"
    (tmp_path / "m.rank0.tsv").write_text(HEADER + "\n" + _line(0) + "\n" + _line(2, "nan") + "\n")
    (tmp_path / "m.rank1.tsv").write_text(HEADER + "\n" + _line(1) + "\n" + _line(1) + "\n")
    for r in (0, 1):
        (tmp_path / f"m.rank{r}.tsv{cli.PARAMS_SUFFIX}").write_text("{}")
    code = cli.main(["merge", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "m.rank0.tsv' line 3 is not a certify result: radius nan" in err, err
    (tmp_path / "m.rank0.tsv").write_text(HEADER + "\n" + _line(0) + "\n")
    with pytest.raises(cli.UsageError, match="m.rank1.tsv' line 3 .*idx 1 is on line 2 already"):
        D.merge_shards(out)
    assert not out.exists() or out.read_text() == ""


def test_generation_store_agrees_and_never_reads_an_earlier_attempt():
    """Three 'attempts' of a 3-rank group on one TCP store (as torchrun restarts use it), ranks
    arriving in different orders: every rank of an attempt gets the same, new generation."""
    import datetime
    import threading
    timeout = datetime.timedelta(seconds=30)
    server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timeout)
    seen = []
    for attempt, order in enumerate(([0, 1, 2], [2, 1, 0], [1, 0, 2])):
        got, errors = {}, []

        def join(rank):
            try:
                client = dist.TCPStore("127.0.0.1", server.port, is_master=False, timeout=timeout)
                store, gen = D.fresh_generation_store(client, rank, 3, timeout, poll_s=0.001)
                store.set(f"hello{rank}", "x")   # lands under the generation's prefix
                got[rank] = gen
            except Exception as exc:  # noqa: BLE001 -- reported below
                errors.append(exc)
        threads = [threading.Thread(target=join, args=(r,)) for r in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and len(got) == 3
        assert len(set(got.values())) == 1
        seen.append(got[0])
        assert server.check([f"unicr_fast/generation{got[0]}/hello{r}" for r in range(3)])
    assert seen == sorted(set(seen))            # a new generation every attempt


@pytest.fixture
def one_rank(monkeypatch):
    """torchrun's environment for a group of one: certify_distributed runs in this process."""
    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0",
                           WORLD_SIZE="1", LOCAL_RANK="0").items():
        monkeypatch.setenv(key, value)


def test_rank_refuses_rows_and_records_it_cannot_check(ws, tmp_path, one_rank):
    """What a rank resumes -- its shard and the merged file -- is checked as certify checks: rows
    of this run's data set (file and line named), settings recorded unless --force-resume."""
    out = tmp_path / "r.tsv"
    shard = D.shard_path(out, 0)

    def run(**kw):
        return D.certify_distributed(ws["data"], ws["model"], uc.noise.Gaussian(0.25), 2, out,
                                     n0=20, n=200, batch=100, max_idx=3, device="cpu",
                                     progress=False, **kw)
    assert run().written == 3
    merged, good = out.read_text(), open(shard).read()
    idx, label, pred, radius, correct, spent = rows(shard)[1]
    other = next(c for c in map(str, range(10)) if c not in (label, pred))
    edited = "\t".join([idx, other, other if correct == "1" else pred, radius, correct, spent])
    for path in (shard, str(out)):       # input 1's label changed, in the shard / the merged file
        text, line = open(path).read(), "\t".join(rows(path)[1])
        with open(path, "w") as f:
            f.write(text.replace(line, edited))
        with pytest.raises(cli.UsageError, match=f"'{path}' line 3 is not a row of this run "
                                                 f"\\(label {other}, but input 1 .* label {label}"):
            run()
        with open(path, "w") as f:
            f.write(text)
    os.unlink(shard + cli.PARAMS_SUFFIX)
    with pytest.raises(cli.UsageError, match="rank0.tsv.params.json is missing.*--force-resume"):
        run()
    assert open(shard).read() == good
    assert run(force_resume=True).resumed == 3
    assert out.read_text() == merged and os.path.exists(shard + cli.PARAMS_SUFFIX)


# -- torchrun ------------------------------------------------------------------------------------
def test_torchrun_equals_single_process_and_merge_is_idempotent(ws, capsys):
    out = ws["root"] / "clean.tsv"
    argv = certify_argv(ws, out)
    res = torchrun(ws, argv)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "merged 9 rows from 2 shards" in res.stderr
    assert no_time(rows(out)) == single(ws, argv)
    check_shards(out, 2, list(range(9)))
    merged = out.read_text()
    params = json.loads((ws["root"] / ("clean.tsv" + cli.PARAMS_SUFFIX)).read_text())
    assert params["noise"] == {"name": "gaussian", "sigma": 0.25}

    # Run again: nothing left to certify, the merged file is byte for byte the same.
    res = torchrun(ws, argv)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "all 9 inputs already certified" in res.stderr
    assert out.read_text() == merged
    # ... and so is a merge by hand.
    assert cli.main(["merge", str(out)]) == 0
    assert "0 new, 9 duplicates dropped" in capsys.readouterr().out
    assert out.read_text() == merged
    # A single-process certify of the merged file finds it complete.
    assert cli.main(argv) == 0
    assert out.read_text() == merged

    # Other settings: every rank refuses (exit 2 on each, none left waiting), nothing changes.
    bad = list(argv)
    bad[bad.index("--sigma") + 1] = "0.5"
    res = torchrun(ws, bad)
    assert res.returncode != 0
    assert "other settings" in res.stderr and "sigma" in res.stderr
    assert out.read_text() == merged


def test_rank_dies_then_rerun_loses_and_duplicates_nothing(ws):
    out = ws["root"] / "died.tsv"
    argv = certify_argv(ws, out)
    res = torchrun(ws, argv, env={D.ENV_DIE_AFTER: "1:2"})
    assert res.returncode != 0
    assert f"exitcode: {D.DIE_EXIT_CODE}" in res.stderr.replace("  ", " "), res.stderr[-3000:]
    shard1 = D.shard_path(out, 1)
    with open(shard1) as f:
        assert not f.read().endswith("\n")       # half a row left behind
    assert len(rows(shard1)) == 2
    assert not out.exists() or out.read_text() == ""  # never merged (rank 0 holds it locked)

    res = torchrun(ws, argv)                     # the same command again
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed after" in res.stderr
    assert no_time(rows(out)) == single(ws, argv)
    check_shards(out, 2, list(range(9)))


def test_rank_dies_and_torchrun_restarts_it(ws):
    """--max-restarts 1: torchrun restarts both workers, which resume their shards. Laplace l1
    with --skip 2 --max 9 (radius engine on every rank; shards by schedule position)."""
    out = ws["root"] / "restarted.tsv"
    argv = certify_argv(ws, out, LAPLACE, "--skip", "2", "--max", "9")
    argv[argv.index("--model") + 1] = ws["laplace"]
    res = torchrun(ws, argv, restarts=1, env={D.ENV_DIE_AFTER: "1:1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"exitcode: {D.DIE_EXIT_CODE}" in res.stderr.replace("  ", " ")  # it did die once
    expected = single(ws, argv)
    assert [int(r[0]) for r in expected] == [0, 2, 4, 6, 8]
    assert no_time(rows(out)) == expected
    check_shards(out, 2, [0, 2, 4, 6, 8])


def test_two_nodes_c10d_rendezvous_with_a_restart(ws):
    """Two torchrun agents as two 'nodes' (one worker each) meeting by the c10d rendezvous; the
    worker of rank 1 dies once, only its agent counts a restart, and the group comes back."""
    out = ws["root"] / "nodes.tsv"
    argv = certify_argv(ws, out)
    port = free_port()
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
               "--nproc-per-node", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test_nodes",
               "--max-restarts", "1", "--monitor-interval", "0.2", "-m", "unicr_fast", "--", *argv]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        env.update({"OMP_NUM_THREADS": "1", D.ENV_DIE_AFTER: "1:2"})  # rank 1 dies, wherever
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    try:
        errs = [p.communicate(timeout=LAUNCH_TIMEOUT)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errs)
    assert f"exitcode: {D.DIE_EXIT_CODE}" in "".join(errs)   # it did die once
    assert no_time(rows(out)) == single(ws, argv)
    check_shards(out, 2, list(range(9)))
