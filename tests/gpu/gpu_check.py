"""The GPU check (``make gpu-check``): sharedsg on ``cuda`` against the same work on the CPU, no Ray.

Runs on a machine with PyTorch and, where there is one, a CUDA GPU; it imports neither Ray nor
anything of ``sharedsg.runtime``. OmegaConf (pure Python, with antlr4-python3-runtime) is the one
dependency such a machine may lack: carry its wheels (docs/runtime.md, "GPU check").

Parts (each prints one line ``PASS|FAIL|SKIP <part>: ...``; the JSON of every number goes to
``--out``):

1. ``trajectory_step``: ``--steps`` steps of the trajectory NMN (``StreamLearner.step``: slow path,
   fast path of Eq. 10 with synthetic gradients) from the same weights and batches on cpu and
   cuda; the training losses must agree to ``rtol`` (see :data:`RTOL`).
2. ``sg_update``: the SG update of Eq. 11 (``SGLearner.update``) on the same targets, cpu vs cuda.
3. ``local_run``: a short ``sharedsg run configs/knowledge_sharing.yaml --local`` with
   ``learner.device=cuda`` (one seed, both arms): completes, results.json written.
4. ``omniglot_job``: one Omniglot 5-way 1-shot job (``FewShotJob``, tiny) with
   ``learner.device=cuda``; reports where its parameters actually live. Without Omniglot in the
   data root it says SKIP and how to get it.
5. ``speed``: steps/s of the demo-sized trajectory step on cpu and cuda, and the host syncs per
   cuda step (``torch.cuda.set_sync_debug_mode``: every synchronising call is counted).

Without CUDA the cuda parts say SKIP and why, and the CPU path of every part still runs (the
cpu-vs-cpu comparison, the run, the job and the CPU speed), so this script is tested anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# float32 on both devices, TF32 off: cuDNN's LSTM and cuBLAS sum in another order than the CPU
# kernels (relative differences ~1e-6 per op). Over a few steps with Adam (which normalises the
# step, so it amplifies tiny gradients' differences) and the fast SGD step on top, the losses
# have been seen to stay within ~1e-5 relative on CPU-vs-CPU reorderings; 1e-3 leaves room for
# the GPU's reductions while still catching a real error (a wrong device transfer, a missing
# synthetic-gradient term), which moves the loss by percents.
RTOL = 1e-3
SMALL = ["model.slot_width=16", "model.encoder_hidden=16", "sg.hidden=32", "learner.batch_size=8",
         "data.obs_len=12", "data.pred_len=12", "data.window_stride=12"]
DEMO = ["data.obs_len=50", "data.pred_len=50", "learner.batch_size=16"]  # configs/knowledge_sharing.yaml's step


def _imports():
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        raise SystemExit("gpu-check: omegaconf is missing; carry its wheels (omegaconf, antlr4-python3-runtime) "
                         "as docs/runtime.md 'GPU check' says")
    for mod in ("ray", "sharedsg.runtime"):
        assert mod not in sys.modules, f"{mod} imported"


def _learner(overrides: List[str], device: str):
    from sharedsg.config import load_config
    from sharedsg.data.sources import make_source
    from sharedsg.learn.sg import SGLearner
    from sharedsg.learn.stream import StreamLearner

    cfg = load_config(None, overrides + ["data.format=sample"])
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0, device=device)
    sg = SGLearner(cfg.model, cfg.sg, seed=0, device=device)
    learner.load_sg(sg.state())
    src = make_source(cfg.data, "cyclist", "train", 0)
    return cfg, learner, sg, src


def trajectory_step(device: str, steps: int) -> Dict[str, List[float]]:
    """Training losses (NMN step) and SG losses (Eq. 11 update) of ``steps`` steps on ``device``,
    from seeded weights and the same batches."""
    torch.manual_seed(0)
    cfg, learner, sg, src = _learner(SMALL, device)
    out: Dict[str, List[float]] = {"loss": [], "sg_loss": []}
    for _ in range(steps):
        result = learner.step(src.next_batch(int(cfg.learner.batch_size)))
        out["loss"].append(float(result.metrics["loss/train"]))
        up = sg.update([result.targets])
        out["sg_loss"].append(float(sum(up.values())))
        learner.load_sg(sg.state())
    return out


def _close(a: List[float], b: List[float]) -> float:
    """The largest relative difference of two loss curves."""
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))


def local_run(device: str, out: Path, iterations: int) -> Dict[str, object]:
    from sharedsg.cli import main

    args = ["run", str(REPO / "configs" / "knowledge_sharing.yaml"), "--local", f"learner.device={device}",
            "experiment.seeds=[0]", f"experiment.iterations={iterations}", f"experiment.eval_every={max(1, iterations // 2)}",
            "experiment.progress=false", "streams.pedestrian.schedule.start=1", "streams.pedestrian.schedule.every=5",
            f"experiment.storage={out}", "experiment.run_name=gpu-check"]
    t0 = time.perf_counter()
    rc = main(args)
    results = json.loads((out / "knowledge_sharing" / "gpu-check" / "results.json").read_text())
    return {"rc": rc, "wall_s": time.perf_counter() - t0, "mse": results["mse"]}


def omniglot_absent() -> Optional[str]:
    """Why the Omniglot job cannot run here (no Omniglot in the data root), or None."""
    from sharedsg.config import data_root
    from sharedsg.data.errors import DataError, how_to_enable
    from sharedsg.data.omniglot import detect_layout

    try:
        detect_layout(data_root() / "omniglot")
    except DataError:
        return f"no omniglot data: {how_to_enable('omniglot')}"
    return None


def omniglot_job(device: str, out: Path) -> Dict[str, object]:
    from sharedsg.config import load_config
    from sharedsg.experiments.omniglot import FewShotJob

    cfg = load_config(REPO / "configs" / "omniglot" / "5w1s.yaml", [
        f"learner.device={device}", "fewshot.meta_iterations=3", "fewshot.meta_batch=2", "fewshot.adapt_steps=2",
        "fewshot.test_episodes=10", "fewshot.queries=2", "fewshot.checkpoint_every=10", "experiment.progress=false"])
    job = FewShotJob(cfg, "5w1s-proposed")
    t0 = time.perf_counter()
    res = job.run(out / "omniglot-job")
    # the weights (model, SG); not the optimisers' state, whose Adam step counts torch keeps on the CPU
    weights = {k: v for k, v in job.impl.state_dict().items() if "optimizer" not in k}
    devices = sorted({t.device.type for t in _tensors(weights)})
    return {"accuracy": res["accuracy"], "wall_s": time.perf_counter() - t0, "parameter_devices": devices}


def _tensors(obj) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def speed(device: str, steps: int) -> Dict[str, float]:
    """Steps/s of the demo-sized step (+ SG update) on ``device``; on cuda also host syncs per step."""
    cfg, learner, sg, src = _learner(DEMO, device)
    batches = [src.next_batch(int(cfg.learner.batch_size)) for _ in range(steps + 3)]

    def one(batch):
        result = learner.step(batch)
        sg.update([result.targets])
        learner.load_sg(sg.state())

    for b in batches[:3]:  # warm-up (cuDNN plans, allocator)
        one(b)
    _sync(device)
    t0 = time.perf_counter()
    for b in batches[3:]:
        one(b)
    _sync(device)
    out = {"steps_per_s": steps / (time.perf_counter() - t0)}
    if device == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for b in batches[3:6]:
                    one(b)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        out["host_syncs_per_step"] = sum("synchroniz" in str(w.message) for w in caught) / 3
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="steps of the cpu-vs-cuda comparison")
    p.add_argument("--speed-steps", type=int, default=30, help="timed steps per device")
    p.add_argument("--iterations", type=int, default=20, help="iterations of the --local knowledge-sharing run")
    p.add_argument("--out", default=None, help="write every number as JSON here")
    args = p.parse_args(argv)
    _imports()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    report: Dict[str, object] = {"torch": torch.__version__, "cuda": cuda,
                                 "gpu": torch.cuda.get_device_name(0) if cuda else None}
    failed: List[str] = []

    def part(name: str, fn: Callable[[], Dict[str, object]], check: Callable[[Dict[str, object]], Optional[str]]):
        try:
            value = fn()
        except Exception as exc:  # a part that breaks is reported, the others still run
            value, why = {"error": f"{type(exc).__name__}: {exc}"}, f"{type(exc).__name__}: {exc}"
        else:
            why = check(value)
        report[name] = value
        print(f"{'FAIL' if why else 'PASS'} {name}: {why or json.dumps(value, default=str)[:300]}", flush=True)
        if why:
            failed.append(name)

    if not cuda:
        print("SKIP cuda: torch.cuda.is_available() is False on this machine; the cuda halves of every part are "
              "skipped, their CPU path runs", flush=True)
    devices = ["cpu", "cuda"] if cuda else ["cpu", "cpu"]  # without a GPU: CPU against itself (determinism)
    with tempfile.TemporaryDirectory(prefix="sharedsg-gpu-check-") as tmp:
        tmp_path = Path(tmp)

        def compare():
            return {"devices": devices, "runs": [trajectory_step(d, args.steps) for d in devices]}

        def check_compare(v):
            a, b = v["runs"]
            worst = max(_close(b["loss"], a["loss"]), _close(b["sg_loss"], a["sg_loss"]))
            v["max_rel_diff"] = worst
            finite = all(math.isfinite(x) for r in (a, b) for x in r["loss"] + r["sg_loss"])
            return None if worst <= RTOL and finite else f"losses differ by {worst:.2e} relative (> {RTOL:g})"

        part("trajectory_step_and_sg_update", compare, check_compare)
        dev = "cuda" if cuda else "cpu"
        part(f"local_run_{dev}", lambda: local_run(dev, tmp_path / "runs", args.iterations),
             lambda v: None if v["rc"] == 0 else f"exit {v['rc']}")
        absent = omniglot_absent()
        if absent:
            print(f"SKIP omniglot_job_{dev}: {absent}", flush=True)
        else:
            part(f"omniglot_job_{dev}", lambda: omniglot_job(dev, tmp_path),
                 lambda v: None if v["parameter_devices"] == [dev] else
                 f"asked for learner.device={dev}, its parameters are on {v['parameter_devices']}")
        part("speed_cpu", lambda: speed("cpu", args.speed_steps), lambda v: None)
        if cuda:
            part("speed_cuda", lambda: speed("cuda", args.speed_steps), lambda v: None)
            report["cuda_over_cpu"] = report["speed_cuda"]["steps_per_s"] / report["speed_cpu"]["steps_per_s"]
    report["ray_imported"] = "ray" in sys.modules
    if report["ray_imported"]:
        failed.append("ray was imported")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}, default=str))
    print(f"gpu-check: {'FAILED: ' + ', '.join(failed) if failed else 'all parts passed'}"
          f"{'' if cuda else ' (CPU path only: no CUDA here)'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
