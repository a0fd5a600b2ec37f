"""The Omniglot, MNIST and meta-test jobs compute on ``learner.device`` (issue 14).

This machine has no GPU, so the jobs are built on PyTorch's ``meta`` device: tensors with
shapes and no data. An op that mixes a meta tensor with a CPU tensor fails ("Tensor on device
meta is not on the expected device cpu"), so a model, an episode, a batch or an evaluation
tensor left on the CPU fails these tests. A meta computation runs until its first read of a
value on the host (a metric's ``float``, a copy to the CPU), which fails with its own message: a training step
that reaches it has computed its forward and backward pass on the device.
The results on the CPU are unchanged (``.to("cpu")`` is a no-op): the jobs' own tests check them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sharedsg.config import load_config

REPO = Path(__file__).resolve().parent.parent
META = torch.device("meta")
# a value read on the host (a metric's float, a copy to the CPU): the computation before it ran on meta
HOST_READ = "cannot be called on meta tensors|Cannot copy out of meta tensor"

FEWSHOT = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.conv_channels=4",
           "model.slot_width=8", "sg.hidden=8", "fewshot.meta_batch=2", "fewshot.adapt_steps=1", "fewshot.queries=2",
           "fewshot.protonet_train_ways=6"]
RARE = ["experiment.kind=mnist_rare", "model.encoder=conv", "model.decoder=classification", "model.conv_channels=4",
        "model.slot_width=8", "sg.hidden=8", "learner.batch_size=8", "data.format=mnist", "rare.test_images=12"]
METATEST = ["experiment.kind=metatest", "data.format=sample", "data.obs_len=6", "data.pred_len=6",
            "model.slot_width=8", "model.slots=4", "model.encoder_hidden=8", "sg.hidden=16", "learner.batch_size=4",
            "metatest.eval_windows=8", "metatest.adapt_examples=4", "metatest.seq2seq_hidden=8",
            "metatest.pretrain_iterations=2", "metatest.adapt_iterations=2"]


def _on_meta(overrides):
    cfg = load_config(None, overrides)
    cfg.learner.device = "meta"  # not a config choice (cpu | cuda[:N]); set after validation, for the test
    return cfg


def _devices(module: torch.nn.Module) -> set:
    return {t.device for t in list(module.parameters()) + list(module.buffers())}


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("method", ["proposed", "baseline", "maml", "protonet", "mann"])
def test_omniglot_job_builds_model_episodes_and_evaluation_on_its_device(method):
    from sharedsg.experiments.omniglot import FewShotJob
    from sharedsg.learn.fewshot import stack_episodes

    job = FewShotJob(_on_meta(FEWSHOT), f"5w1s-{method}")
    impl = job.impl
    nets = [getattr(impl, n) for n in ("model", "net", "encoder", "sg") if getattr(impl, n, None) is not None]
    assert nets and all(_devices(n) == {META} for n in nets)
    train = job.train_episodes(0)
    test = job.episodes.episode("test", 0)
    for ep in train + [test, job.episodes.episode("val", 0)]:
        assert {ep.support_x.device, ep.support_y.device, ep.query_x.device, ep.query_y.device} == {META}
    # evaluation: the query logits of a test episode
    if method in ("proposed", "baseline"):
        logits = impl.query_logits([test])
    elif method == "maml":
        logits = impl.query_logits(test)  # the test-time adaptation steps included
    elif method == "protonet":
        logits = impl._embed(test.query_x)
    else:
        logits = impl.logits(stack_episodes([test]))
    assert logits.device == META
    # one meta-training step: forward, backward and the optimiser step on meta, then a metric's host read
    with pytest.raises(RuntimeError, match=HOST_READ):
        impl.meta_step(train)


@pytest.mark.needs_data("mnist")
def test_mnist_rare_job_trains_and_tests_on_its_device():
    from sharedsg.experiments.mnist_rare import RareJob, _episode

    job = RareJob(_on_meta(RARE), "proposed")
    assert _devices(job.learner.model) == {META} and _devices(job.learner.sg) == {META}
    assert {job.test_x.device, job.test_y.device, job.context_x.device, job.context_y.device} == {META}
    batch, _ = job.batch(0)
    assert batch.x.device == META and batch.y.device == META
    assert job.test_logits(job.test_x).device == META
    with pytest.raises(RuntimeError, match=HOST_READ):
        job.learner.meta_step([_episode(batch.x, batch.y[:, 0], len(batch) // 2)])


@pytest.mark.parametrize("method", ["proposed", "maml1", "supervised"])
def test_metatest_job_builds_its_networks_and_batches_on_its_device(method):
    from omegaconf import OmegaConf

    from sharedsg.experiments import metatest

    cfg = _on_meta(METATEST)
    cyclists, adapt, held, fig5 = metatest._data(cfg, 0, META)
    assert cyclists.next_batch(4).x.device == META
    assert {adapt.x.device, adapt.y.device, held.x.device, held.y.device} == {META}
    if method == "proposed":
        stream = metatest._nmn_stream(cfg, method, 0, META)
        learner, sg = stream.learner, stream.endpoint.group
        assert _devices(learner.nmn) == {META} and _devices(learner.sg) == {META} and _devices(sg.modules) == {META}
    else:
        net = metatest._seq2seq_net(cfg, method, 0, META)
        assert _devices(net) == {META} and net(held.x, held.y.shape[1]).device == META
    # the whole job on the device a job actor passes: it computes there up to its first metric read
    with pytest.raises(RuntimeError, match=HOST_READ):
        metatest.run_job(OmegaConf.to_yaml(cfg), method, 0, device="meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: learner.device=cuda:0 is valid here")
def test_local_job_run_refuses_a_device_this_machine_lacks(tmp_path, capsys):
    """``sharedsg run --local`` of a job kind checks learner.device (this machine has no CUDA)."""
    from sharedsg.cli import main

    assert main(["run", str(REPO / "configs/omniglot/5w1s.yaml"), "--local", "learner.device=cuda:0",
                 f"experiment.storage={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "sharedsg: error: config error: learner.device: 'cuda:0' but this machine has no CUDA device "
        "(torch.cuda.is_available() is false); use learner.device=cpu"]
    assert not any(tmp_path.iterdir())  # nothing written
