"""The public API (sharedsg.api) on a plain nn.Module, in-process and on a real local Ray: targets
arrive exactly once, the synthetic gradient is the group predictor's output for the version held,
decoupled mode with an oracle SG is back-propagation, a model that does not fit is refused in one
line (exit 2 from the example), detaching leaves the group serving the others, and the example runs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

import sharedsg
from sharedsg.api import Endpoint, SGGroup, connect, serve, settings
from sharedsg.config import ApiConfig, ModelConfig, SGConfig
from sharedsg.errors import UserError
from sharedsg.harness.endpoint import LocalEndpoint
from sharedsg.learn.sg import SGLearner

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "mnist_shared_sg.py"
DIMS, CONTEXT, B = {"h": 6}, 3, 5
STEPS = 40  # on Ray: enough pushes in flight together that an out-of-order arrival would show


def _net(seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, DIMS["h"]), nn.Tanh()), nn.Linear(DIMS["h"], CONTEXT)


def _batch(step: int):
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(B, 4, generator=gen), torch.randint(0, CONTEXT, (B,), generator=gen)


def _steps(ep: Endpoint, lower, upper, n: int, first: int = 0):
    """``n`` steps through ``ep``; per step the version held, the gradient that reached the lower
    module's output, and the target it should send: (h, one-hot y, B * dL/dh) by autograd."""
    opt = torch.optim.SGD([*lower.parameters(), *upper.parameters()], lr=0.1)
    rows = []
    for step in range(first, first + n):
        x, y = _batch(step)
        h0 = lower(x)
        g_true = torch.autograd.grad(F.cross_entropy(upper(h0), y), h0, retain_graph=True)[0]
        seen = {}
        h0.register_hook(lambda g: seen.setdefault("below", g))
        onehot = F.one_hot(y, CONTEXT).float()
        h = ep.mark("h", h0, onehot)
        version = ep.version
        opt.zero_grad()
        F.cross_entropy(upper(h), y).backward()
        opt.step()
        rows.append((version, seen["below"], (h0.detach(), onehot, g_true * B)))
    return rows


def _reference(targets, seed: int = 0, **sg):
    """A learner fed every target set once, in order: what the group's weights must be."""
    learner = SGLearner(OmegaConf.structured(ModelConfig), settings(SGConfig, sg), seed,
                        dims={**DIMS, "target": CONTEXT})
    states = [learner.state()]
    for h, y, g in targets:
        learner.update([_targets(h, y, g)])
        states.append(learner.state())
    return learner, states


def _targets(h, y, g):
    from sharedsg.learn.types import SGTargets

    return SGTargets({"h": h.unsqueeze(1)}, y.unsqueeze(1), {"h": g.unsqueeze(1)})


def _predict(learner: SGLearner, state, h, y) -> torch.Tensor:
    learner.modules.load_state_dict(state.weights)
    return learner.predict({"h": h.unsqueeze(1)}, y.unsqueeze(1))["h"].squeeze(1)


def test_import_sharedsg_loads_neither_torch_nor_ray():
    code = ("import sys, sharedsg; print(sorted(m for m in ('torch', 'ray') if m in sys.modules)); "
            "sharedsg.SGGroup; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split() == ["[]", "False"]


def test_in_process_targets_arrive_once_and_the_synthetic_gradient_is_the_groups():
    group = SGGroup(kind="mlp", hidden=16)
    ep = connect(group, "plain", DIMS, CONTEXT, mode="decoupled")
    lower, upper = _net()
    rows = _steps(ep, lower, upper, 6)
    learner, states = _reference([t for _, _, t in rows], kind="mlp", hidden=16)
    assert group.pushes == {"plain": 6} and group.learner.version == 6
    for k, v in group.learner.modules.state_dict().items():
        torch.testing.assert_close(v, learner.modules.state_dict()[k])
    for version, below, (h, y, _) in rows:  # decoupled: s / B reached the layer below, s of the version held
        assert version == states[version].version
        torch.testing.assert_close(below, _predict(learner, states[version], h, y) / B)
    assert rows[-1][1].abs().sum() > 0  # the predictor moved off its zero start
    fit = ep.fit()["h"]
    assert fit["steps"] == 6 and -1 <= fit["cosine"] <= 1 and fit["rel_mse"] > 0


def test_in_process_the_streams_staleness_rule_decides_the_version_held():
    """sg.max_staleness=2: the replica is refreshed once it is 2 versions behind (ExchangeRule, as for NMN streams)."""
    group = SGGroup(kind="mlp", hidden=16, max_staleness=2)
    rows = _steps(connect(group, "plain", DIMS, CONTEXT, mode="decoupled"), *_net(), 6)
    learner, states = _reference([t for _, _, t in rows], kind="mlp", hidden=16)
    assert [version for version, _, _ in rows] == [0, 0, 2, 2, 4, 4]
    for version, below, (h, y, _) in rows:
        torch.testing.assert_close(below, _predict(learner, states[version], h, y) / B)


def test_in_process_rpc_transport_applies_the_groups_newest_synthetic_gradient():
    group = SGGroup(kind="mlp", hidden=16, transport="rpc", max_staleness=2)  # a replica would lag
    rows = _steps(connect(group, "plain", DIMS, CONTEXT, mode="decoupled"), *_net(), 4)
    learner, states = _reference([t for _, _, t in rows], kind="mlp", hidden=16)
    assert group.pushes == {"plain": 4}
    for step, (_, below, (h, y, _)) in enumerate(rows):  # step k: the group has trained on k pushes
        torch.testing.assert_close(below, _predict(learner, states[step], h, y) / B)


class _Oracle(nn.Module):
    """SG(h, y) = the true per-sample dL/dh of a linear layer + cross entropy: (softmax(W h + b) - y) W."""

    def __init__(self, upper: nn.Linear) -> None:
        super().__init__()
        self.upper = upper

    def forward(self, h, y):
        return {"h": (F.softmax(self.upper(h["h"]), -1) - y) @ self.upper.weight}


def _oracle_endpoint(upper: nn.Linear, mode: str, **api) -> Endpoint:
    """An endpoint whose predictors are the oracle's, over an in-process group that counts the pushes."""
    sg = settings(SGConfig, {})
    group = SGLearner(OmegaConf.structured(ModelConfig), sg, dims={**DIMS, "target": CONTEXT})
    ep = Endpoint(LocalEndpoint(group), {**DIMS, "target": CONTEXT}, settings(ApiConfig, {"mode": mode, **api}), sg)
    ep.modules = _Oracle(upper)
    return ep


def test_decoupled_mode_with_an_oracle_sg_is_back_propagation():
    lower, upper = _net()
    ref_lower, ref_upper = _net()
    ep = _oracle_endpoint(upper, "decoupled")
    x, y = _batch(0)
    F.cross_entropy(upper(ep.mark("h", lower(x), F.one_hot(y, CONTEXT).float())), y).backward()
    F.cross_entropy(ref_upper(ref_lower(x)), y).backward()
    for p, q in zip([*lower.parameters(), *upper.parameters()], [*ref_lower.parameters(), *ref_upper.parameters()]):
        torch.testing.assert_close(p.grad, q.grad)
    assert ep.fit()["h"]["rel_mse"] < 1e-10 and ep.endpoint.seq == 1


def test_add_mode_adds_alpha_times_the_synthetic_gradient():
    lower, upper = _net()
    ep = _oracle_endpoint(upper, "add", alpha=0.5)
    x, y = _batch(0)
    h0 = lower(x)
    true = torch.autograd.grad(F.cross_entropy(upper(h0), y), h0, retain_graph=True)[0]
    seen = {}
    h0.register_hook(lambda g: seen.setdefault("below", g))
    F.cross_entropy(upper(ep.mark("h", h0, F.one_hot(y, CONTEXT).float())), y).backward()
    torch.testing.assert_close(seen["below"], 1.5 * true)


def test_connect_leaves_the_models_random_stream_as_it_was():
    torch.manual_seed(3)
    connect(SGGroup(), "a", DIMS, CONTEXT)
    drawn = torch.rand(4)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(4))


def test_a_model_that_does_not_fit_is_refused_in_one_line():
    group = SGGroup()
    connect(group, "a", DIMS, CONTEXT)
    with pytest.raises(UserError) as exc:
        connect(group, "b", {"h": 7}, CONTEXT)
    assert "\n" not in str(exc.value) and "h=7 (group has 6)" in str(exc.value)
    with pytest.raises(UserError, match="width 7"):
        connect(SGGroup(), "c", DIMS, CONTEXT).mark("h", torch.zeros(2, 7, requires_grad=True), torch.zeros(2, 3))
    with pytest.raises(UserError, match="config error"):
        connect(SGGroup(), "d", DIMS, CONTEXT, mode="sideways")


def test_in_process_detach_leaves_the_group_serving_the_others():
    group = SGGroup(kind="mlp", hidden=16)
    a, b = connect(group, "a", DIMS, CONTEXT), connect(group, "b", DIMS, CONTEXT)
    _steps(a, *_net(0), 2)
    a.detach()
    with pytest.raises(UserError, match="detached"):
        a.mark("h", torch.zeros(2, 6, requires_grad=True), torch.zeros(2, 3))
    _steps(b, *_net(1), 3)
    assert group.pushes == {"b": 3} and group.learner.version == 5


# -- on Ray ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_service(ray_session, tmp_path_factory):
    """An SG service on the test run's one Ray (tests/conftest.py), stopped with the module."""
    pytest.importorskip("ray")
    service = serve("api-test", str(tmp_path_factory.mktemp("service")), kind="mlp", hidden=16,
                    policy="exact", coalesce_max=1, max_staleness=0)
    yield service
    service.stop()


def _group_state(ep: Endpoint):
    """The Ray group's books (versions, pushes per model, duplicates, lost pushes)."""
    import ray

    return ray.get(ep.endpoint.client.actor.state.remote())


def test_on_ray_targets_arrive_once_and_the_synthetic_gradient_is_the_groups(ray_service):
    ep = connect("api-test/once", "plain", DIMS, CONTEXT, mode="decoupled")
    lower, upper = _net()
    rows = _steps(ep, lower, upper, STEPS)
    assert ep.flush() == STEPS
    state = _group_state(ep)
    assert (state["pushes"], state["trained"], state["duplicates"], state["lost_pushes"]) == (STEPS, STEPS, 0, 0)
    assert state["streams"]["plain"]["last_seq"] == STEPS
    learner, states = _reference([t for _, _, t in rows], kind="mlp", hidden=16)
    for k, v in ep.modules.state_dict().items():  # the group's weights, version 6, as pulled
        torch.testing.assert_close(v, learner.modules.state_dict()[k])
    for version, below, (h, y, _) in rows:  # s of the version held, which the staleness bound keeps recent
        torch.testing.assert_close(below, _predict(learner, states[version], h, y) / B)
    held = [v for v, _, _ in rows]
    assert held == sorted(held)


def test_on_ray_a_model_that_does_not_fit_is_refused_in_one_line(ray_service):
    connect("api-test/fit", "a", DIMS, CONTEXT)
    with pytest.raises(UserError) as exc:
        connect("api-test/fit", "b", {"g": 6}, CONTEXT)
    assert "\n" not in str(exc.value) and "g=6 (group has none)" in str(exc.value)
    with pytest.raises(UserError, match="no experiment 'nope'"):
        connect("nope/g", "c", DIMS, CONTEXT)
    with pytest.raises(UserError, match="experiment.name|name"):
        serve("a/b", "unused")


def test_on_ray_detach_leaves_the_group_serving_the_others(ray_service):
    a = connect("api-test/two", "a", DIMS, CONTEXT, mode="decoupled")
    b = connect("api-test/two", "b", DIMS, CONTEXT, mode="decoupled")
    _steps(a, *_net(0), 2)
    _steps(b, *_net(1), 2, first=2)
    a.detach()
    _steps(b, *_net(1), 3, first=4)
    assert b.flush() == 7
    streams = _group_state(b)["streams"]
    assert (streams["a"]["pushes"], streams["b"]["pushes"]) == (2, 5)


@pytest.mark.needs_data("mnist")
def test_the_example_refuses_a_group_of_other_dimensions_with_exit_2(ray_service, capsys):
    spec = importlib.util.spec_from_file_location("mnist_shared_sg", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    connect("api-test/narrow", "a", DIMS, CONTEXT)
    assert example.main(["--attach", "api-test/narrow", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "h=256 (group has 6)" in err and "target=10 (group has 3)" in err


@pytest.mark.slow
@pytest.mark.needs_data("mnist")
def test_the_example_writes_its_table_and_plot(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(out), "--seeds", "0", "--steps", "20"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads((out / "results.json").read_text())
    assert sorted((r["arm"], r["model"]) for r in rows) == sorted((a, m) for a in ("bp", "own", "shared")
                                                                  for m in ("mlp", "cnn"))
    assert all(0.1 < r["test_acc"] <= 1 for r in rows)
    assert all(r["steps"] == 20 for r in rows if r["arm"] != "bp")
    assert (out / "mnist_shared_sg.png").stat().st_size > 0 and "| shared | cnn |" in (out / "table.md").read_text()
    assert sharedsg.connect is connect


@pytest.mark.slow
@pytest.mark.needs_data("mnist")
def test_a_plain_model_attaches_to_a_running_attachable_experiment(tmp_path):
    """An NMN run with experiment.attachable=true (its local Ray outlives it); the example's MLP is
    refused by the NMN's group (exit 2, one line) and trains through a new group of that service."""
    import os

    import psutil

    from sharedsg.bench.raytools import tiny_yaml

    cfg = tiny_yaml(tmp_path / "tiny.yaml", tmp_path / "runs", name="api-attach")
    env = dict(os.environ, RAY_ADDRESS="", CUDA_VISIBLE_DEVICES="", SHAREDSG_CACHE=str(tmp_path / "cache"),
               PYTHONPATH=f"{ROOT}:{os.environ.get('PYTHONPATH', '')}")

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=400)

    state_file = tmp_path / "cache" / "local-ray.json"
    try:
        started = run("-m", "sharedsg.cli", "run", str(cfg), "experiment.attachable=true")
        assert started.returncode == 0, started.stderr[-3000:]
        refused = run(str(EXAMPLE), "--attach", "api-attach/shared", "--steps", "3")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
        line = [s for s in refused.stderr.splitlines() if s.startswith("error:")]
        assert len(line) == 1 and "ic=None (group has 8)" in line[0] and "h=256 (group has none)" in line[0]
        attached = run(str(EXAMPLE), "--attach", "api-attach/mnist", "--steps", "5")
        assert attached.returncode == 0, attached.stderr[-3000:]
        assert json.loads(attached.stdout.strip().splitlines()[-1])["steps"] == 5
        status = run("-m", "sharedsg.cli", "status", "--experiment", "api-attach", "--json")
        streams = json.loads(status.stdout)["api-attach"]["streams"]
        assert streams["mnist-mlp"]["pushes"] == 5 and streams["mnist-mlp"]["group"] == "mnist"
        assert {"cyclist", "pedestrian"} <= set(streams)
    finally:
        run("-m", "sharedsg.cli", "stop", "--experiment", "api-attach")
        if state_file.exists():
            pid = int(json.loads(state_file.read_text())["pid"])
            if psutil.pid_exists(pid):
                os.kill(pid, 15)


@pytest.mark.needs_data("mnist")
def test_the_docs_in_process_snippet_runs_verbatim():
    import re

    from sharedsg.config import data_root
    from sharedsg.data.mnist import load_mnist

    code = re.search(r"## In one process\n\n```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 15
    train = load_mnist(data_root() / "mnist", "train")
    x = torch.tensor(train.images[:200]).float().div(255)
    loader = list(zip(x.split(50), torch.tensor(train.labels[:200]).long().split(50)))
    scope = {"loader": loader}
    exec(compile(code, "docs/api.md", "exec"), scope)
    fit = scope["sg"].fit()["h"]
    assert fit["steps"] == 4 and fit["version"] == 3 and scope["group"].pushes == {"mlp": 4}
    readme = re.search(r"### Any PyTorch model\n.*?```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert readme.group(1) == code  # the README shows this very snippet
