"""Smoke tests of the research scripts (research/, outside the package), so that they keep
running against the library: the sweeps build every configuration they list, the helper scripts
for GPU runs keep their state, and each diagnostic reports what its docstring says."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "research"))

import diffrec_sweep  # noqa: E402
import epoch_selection  # noqa: E402
import ldiffrec_scaling  # noqa: E402
import noisy_robustness  # noqa: E402
import reproduce  # noqa: E402


def test_every_sweep_config_builds_its_model():
    # a misspelt override in GRID / LGRID would only show after minutes of ml-1m training
    from tutorial_lib.models.diffrec_fast import FastLDiffRec, FastTDiffRec

    for model_kw, train_kw in diffrec_sweep.GRID:
        model = diffrec_sweep.diffrec_class(model_kw)(50, **{**diffrec_sweep.DIFFREC, **model_kw})
        assert set(diffrec_sweep.train_kwargs(train_kw)) == {"lr", "weight_decay", "batch_size", "optimizer"}
    assert model.diffusion.betas[0].item() == pytest.approx(1e-5)       # the last entry: the release's beta_1
    for model_kw, cluster_kw in diffrec_sweep.LGRID:
        FastLDiffRec(50, clusters=[0] * 30 + [1] * 20, **model_kw)
        assert set(cluster_kw) <= {"n_clusters", "lightgcn_epochs"}

    w_mins = []
    for model_kw, train_kw in diffrec_sweep.TGRID:
        model = FastTDiffRec(50, **{**diffrec_sweep.DIFFREC, **model_kw})
        w_mins.append(model.input_fn.w_min)
        assert train_kw == {} and model.input_fn.w_max == 1.0
    assert w_mins == [0.1, 0.2, 0.3, 0.4, 0.5]          # the paper's range; entry 0 is the recipe's


def test_sweep_lines_name_device_chip_and_torch():
    # runs on two devices or PyTorch versions are not interchangeable (RESULTS.md): each line says which
    from types import SimpleNamespace

    h = SimpleNamespace(best_valid={"recall@20": 0.11}, best_test={"recall@20": 0.17, "ndcg@20": 0.1},
                        best_epoch=5, epochs=25, device="cpu")
    row = diffrec_sweep._summary({"T": 10}, 3, h, 0.0)
    assert row["device"] == "cpu" and row["processor"] == reproduce.processor("cpu")
    assert row["torch"] == torch.__version__ and row["seed"] == 3 and row["config"] == {"T": 10}


def test_own_sampler_generator_takes_the_steps_off_the_global_stream():
    # --sampler-rng own: steps follow the seed alone, and the global generator (noise, dropout)
    # no longer advances when a step is drawn
    from tutorial_lib.models.diffrec import DiffRec

    def steps_and_global_stream(own: bool):
        torch.manual_seed(0)
        model = DiffRec(30, T=20)
        if own:
            diffrec_sweep.own_sampler_generator(model, seed=7)
        before = torch.get_rng_state()
        t, _ = model.sampler.sample(64)
        return t, torch.equal(before, torch.get_rng_state())

    shared_t, shared_untouched = steps_and_global_stream(own=False)
    own_t, own_untouched = steps_and_global_stream(own=True)
    assert own_untouched and not shared_untouched
    expected = torch.multinomial(torch.full((20,), 0.05, dtype=torch.float64), 64, replacement=True,
                                 generator=torch.Generator().manual_seed(7))
    assert torch.equal(own_t, expected) and not torch.equal(shared_t, own_t)


def test_sweep_passes_sampler_rng_to_the_run_and_prints_it(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(diffrec_sweep, "run", lambda *a: calls.append(a) or {"sampler_rng": a[-1]})
    diffrec_sweep.main(["--only", "0", "--seeds", "4", "--data-dir", "x", "--device", "cpu", "--sampler-rng", "own"])
    assert calls == [({}, {}, 4, "x", "cpu", "own")]
    assert json.loads(capsys.readouterr().out)["sampler_rng"] == "own"
    with pytest.raises(SystemExit):
        diffrec_sweep.main(["--sampler-rng", "mine"])


@pytest.mark.parametrize("family, runner, model", [("tdiffrec", "run", "FastTDiffRec"),
                                                   ("ltdiffrec", "run_ldiffrec", "FastLTDiffRec")])
def test_sweep_families_with_time_weights_run_their_recipe_with_w_min(monkeypatch, capsys, family, runner, model):
    from tutorial_lib.models import diffrec_fast

    calls = []
    monkeypatch.setattr(diffrec_sweep, runner, lambda *a, **k: calls.append((a, k)) or {"config": a[0]})
    diffrec_sweep.main(["--family", family, "--only", "2", "--seeds", "3", "--data-dir", "x",
                        "--device", "cpu"])
    assert calls == [(({"w_min": 0.3}, {}, 3, "x", "cpu", "shared"), {"model_cls": getattr(diffrec_fast, model)})]
    row = json.loads(capsys.readouterr().out)
    assert row["family"] == family and row["index"] == 2


def test_sweep_run_builds_the_model_class_it_is_given(monkeypatch):
    from types import SimpleNamespace

    from tutorial_lib.models.diffrec_fast import FastLTDiffRec, FastTDiffRec

    built = []

    def fake_fit(model, data, **kw):
        built.append(model)
        return SimpleNamespace(best_valid={"recall@20": 0.1}, best_test={"recall@20": 0.2, "ndcg@20": 0.1},
                               best_epoch=5, epochs=25, device="cpu")

    monkeypatch.setattr(diffrec_sweep, "load", lambda args: SimpleNamespace(n_items=30))
    monkeypatch.setattr(diffrec_sweep, "fit", fake_fit)
    diffrec_sweep.run({"w_min": 0.4}, {}, 1, "x", "cpu", model_cls=FastTDiffRec)
    diffrec_sweep.run({}, {}, 1, "x", "cpu")
    assert type(built[0]) is FastTDiffRec and built[0].input_fn.w_min == 0.4
    assert type(built[1]) is diffrec_sweep.FastDiffRec and built[1].input_fn is None

    # L-DiffRec's runner: one cluster, so no LightGCN is trained
    diffrec_sweep.run_ldiffrec({"w_min": 0.4}, {"n_clusters": 1}, 1, "x", "cpu", model_cls=FastLTDiffRec)
    diffrec_sweep.run_ldiffrec({}, {"n_clusters": 1}, 1, "x", "cpu")
    assert type(built[2]) is FastLTDiffRec and built[2].input_fn.w_min == 0.4
    assert type(built[3]) is diffrec_sweep.FastLDiffRec and built[3].input_fn is None


def test_cpu_random_streams_change_nothing_on_the_cpu():
    # the GPU check draws every random number as a CPU run would: on the CPU it must be that run exactly
    import cpu_random_streams

    from tutorial_lib.models.diffrec_fast import FastDiffRec, FastLDiffRec
    from tutorial_lib.synthetic import make_synthetic
    from tutorial_lib.train import fit

    data = make_synthetic(n_users=80, n_items=200, interactions_per_user=12, seed=0)[0]

    def run(model_cls):
        torch.manual_seed(0)
        model = model_cls(data.n_items)
        h = fit(model, data, epochs=2, batch_size=16, eval_every=1, device="cpu", seed=0, progress=False)
        return [p.detach().clone() for p in model.parameters()], h.best_valid

    for model_cls in (FastLDiffRec, FastDiffRec):             # the classes the sweeps train
        plain = run(model_cls)
        with cpu_random_streams.cpu_random_streams():
            patched = run(model_cls)
            x = torch.ones(3, 5)
            assert torch.nn.functional.dropout(x, 0.5, training=False) is x
        assert all(torch.equal(a, b) for a, b in zip(plain[0], patched[0])) and plain[1] == patched[1]
    assert torch.randn_like.__name__ == "randn_like"          # restored on exit
    assert torch.nn.functional.dropout.__module__ == "torch.nn.functional"


def test_gpu_parallel_script_resumes_each_job_from_its_own_state(tmp_path, shared_datasets):
    # the ablation-beside-a-control call: state refreshed per job, RESUME_ONLY never restarts a run
    import tarfile

    script = ROOT / "research" / "gpu_diffurec_parallel.sh"
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "THREADS_PER_JOB": "1",
           "JOBS_DIR": str(tmp_path / "jobs"), "RETURN_PARTS": "a"}
    job_a, job_b = f"a:{tmp_path / 'sa'}:--fast,--epochs,50", f"b:{tmp_path / 'sb'}:--fast"

    def call(out, *jobs, **extra):
        return subprocess.run(["bash", str(script), str(shared_datasets), str(out), "0", *jobs],
                              env={**env, **extra}, capture_output=True, text=True, timeout=300)

    first = call(tmp_path / "out1", job_a)                              # one epoch, then a pause
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["a.diffurec.pt.part-00", "logs.tar.gz"]
    assert (tmp_path / "out1" / "a.diffurec.pt.part-00").read_bytes() == (tmp_path / "sa" / "diffurec.pt.part-00").read_bytes()
    second = call(tmp_path / "out2", job_a, job_b, RESUME_ONLY="1")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "b: no state" in second.stdout and not list((tmp_path / "sb").iterdir())
    with tarfile.open(tmp_path / "out2" / "logs.tar.gz") as tar:
        line = json.loads(tar.extractfile("./a/diffurec.json").read().decode().splitlines()[-1])
    assert line["paused"] and line["epochs"] == 2                     # resumed, not restarted


def test_gpu_ldiffrec_sweep_script_stops_at_its_limit_and_keeps_each_jobs_errors(tmp_path, shared_datasets):
    # one device call: a job still running at the limit is killed (no stray process keeps the
    # machine busy), a failing job's stderr is kept under its INDEX:SEED, the first line names the GPU
    script = ROOT / "research" / "gpu_ldiffrec_sweep.sh"
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu"}
    out = tmp_path / "out"
    # 30 s: long enough for the bad job to import and fail on a loaded machine, far too short for a run
    done = subprocess.run(["bash", str(script), str(shared_datasets), str(out), "2", "30", "99:1", "2:1"],
                          env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0 and "status 124" in done.stdout and "0 runs finished" in done.stdout
    assert json.loads((out / "sweep.jsonl").read_text().splitlines()[0])["gpu"] is None
    assert "99:1 IndexError: list index out of range" in (out / "errors.log").read_text()
    assert not _running(b"diffrec_sweep.py", str(shared_datasets).encode())   # nothing left running


def _running(*words: bytes) -> list[bytes]:
    """Command lines of the live processes whose command line holds every one of ``words``."""
    lines = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = path.read_bytes()
        except OSError:                                   # the process ended meanwhile
            continue
        if all(w in line for w in words):
            lines.append(line)
    return lines


def test_epoch_selection_reports_both_choices_from_one_run(capsys):
    # the protocol's figure is the test at the best validation epoch; the "selected on test"
    # figure is the best test over the same run's evaluations, never below it
    epoch_selection.main(["diffrec", "--dataset", "synthetic", "--epochs", "15", "--seeds", "3"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    valid = {int(e): v for e, v in line["valid_recall@20_by_epoch"].items()}
    test = {int(e): v for e, v in line["test_recall@20_by_epoch"].items()}
    assert sorted(valid) == sorted(test) == [5, 10, 15]
    on_valid, on_test = line["selected_on_valid"], line["selected_on_test"]
    assert valid[on_valid["epoch"]] == max(valid.values()) and on_valid["recall@20"] == test[on_valid["epoch"]]
    assert on_test["recall@20"] == max(test.values()) >= on_valid["recall@20"]
    assert line["seed"] == 3 and line["dataset"] == "synthetic"


def test_noisy_robustness_reports_the_drop_against_the_clean_run(capsys):
    df = noisy_robustness.main(["--models", "EASE", "--noise", "0.0", "0.4"])
    clean, noisy = df.loc[("EASE", 0.0), "recall@20"], df.loc[("EASE", 0.4), "recall@20"]
    assert noisy < clean                                     # false positives hurt
    assert df.loc[("EASE", 0.4), "recall@20 drop %"] == pytest.approx(100 * (1 - noisy / clean), abs=0.06)
    assert df.loc[("EASE", 0.0), "recall@20 drop %"] == 0.0


def test_gpu_pieces_script_keeps_the_state_when_the_wall_limit_kills_it(tmp_path, shared_datasets):
    # a device call that overruns must still hand back the checkpoint parts (else a piece is lost)
    script = ROOT / "research" / "gpu_diffurec_pieces.sh"
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "CKPT": str(tmp_path / "joined.pt")}
    state, out1, out2 = tmp_path / "state", tmp_path / "out1", tmp_path / "out2"
    state.mkdir()

    def call(out, seconds, **extra):
        return subprocess.run(["bash", str(script), str(shared_datasets), str(state), str(out), seconds],
                              env={**env, **extra}, capture_output=True, text=True, timeout=300)

    first = call(out1, "0", EXTRA="--fast --epochs 50")             # one epoch, then a clean pause
    assert first.returncode == 0, first.stderr
    assert '"paused": true' in (out1 / "diffurec.json").read_text()
    for part in out1.glob("diffurec.pt.part-*"):
        (state / part.name).write_bytes(part.read_bytes())
    killed = call(out2, "1000", EXTRA="--fast --epochs 50", WALL_LIMIT="2")    # killed mid-run
    assert killed.returncode == 124
    parts = sorted(out2.glob("diffurec.pt.part-*"))
    assert parts and b"".join(p.read_bytes() for p in parts) == b"".join(
        p.read_bytes() for p in sorted(state.glob("diffurec.pt.part-*")))  # the state it resumed from


def test_scaling_counts_the_parameters_it_recorded():
    # LOG.md's scaling table (1,000 items): DiffRec's MLP against L-DiffRec's clustered encoders
    counts = [sum(p.numel() for p in ldiffrec_scaling.build(m, 1000).parameters())
              for m in ldiffrec_scaling.MODELS]
    assert counts == [1_448_510, 785_310]


def test_ease_time_weighted_is_the_library_ease_on_binary_rows_and_weights_the_same_clicks():
    import numpy as np

    import ease_time_weighted
    from tutorial_lib.models.ease import EASE
    from tutorial_lib.synthetic import make_synthetic

    data, _ = make_synthetic(n_users=80, n_items=160, n_clusters=4, interactions_per_user=20, seed=0)
    binary = ease_time_weighted.rows(data, 1.0)
    B = ease_time_weighted.ease_weights(binary, 30.0)
    np.testing.assert_allclose(B, EASE(lam=30.0).fit(data).B.numpy(), atol=1e-4)
    weighted = ease_time_weighted.rows(data, 0.4)                 # x_bar: the same clicks, weights in [0.4, 1]
    assert ((weighted > 0) == (binary > 0)).all()
    assert weighted[weighted > 0].min() >= 0.4 - 1e-6 and weighted.max() <= 1 + 1e-6
    assert not np.allclose(ease_time_weighted.ease_weights(weighted, 30.0), B)
