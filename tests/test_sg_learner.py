"""SGLearner: Eq. 11 training, versioning, dimension checks."""

import pickle

import pytest
import torch

from sharedsg.data.batch import Batch
from sharedsg.learn.sg import DimensionMismatch, SGLearner
from sharedsg.learn.stream import StreamLearner
from sharedsg.learn.types import SGTargets


def _walks(n_batches=4, b=16, t=10, seed=0):
    """Smooth random-walk trajectories: observed frames, then the future continuing from the last one."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        x = torch.cumsum(torch.randn(b, t, 2, generator=g) * 0.02, 1)
        y = x[:, -1:] + torch.cumsum(torch.randn(b, t, 2, generator=g) * 0.02, 1)
        out.append(Batch(x, y))
    return out


def test_sg_predictors_learn_the_true_gradients(small_cfg):
    """On a fixed NMN and a fixed stream of batches, every SG reaches cosine >= 0.9 with the true gradient."""
    cfg = small_cfg("model.slot_width=16", "model.slots=10", "model.persist_memory=false",
                    "learner.mixing=bp_only", "sg.lr=3e-3", "sg.hidden=64")
    stream = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    sg = SGLearner(cfg.model, cfg.sg, seed=0)
    batches = _walks()
    for it in range(320):
        _, result = stream.gradients(batches[it % len(batches)])  # the NMN stays fixed
        sg.update([result.targets])
        stream.load_sg(sg.state())
    cos = {c: [] for c in ("ic", "oc", "wc")}
    for b in batches:
        _, result = stream.gradients(b)
        for c in cos:
            cos[c].append(result.metrics[f"sg/{c}/cosine"])
    final = {c: sum(v) / len(v) for c, v in cos.items()}
    print("SG cosine similarity with the true gradient after 320 updates:", {c: round(v, 4) for c, v in final.items()})
    for c, v in final.items():
        assert v >= 0.9, f"SG^{c.upper()} cosine {v:.3f} < 0.9"
    assert sg.version == 320


def test_versions_increase_and_states_load(small_cfg):
    cfg = small_cfg()
    stream = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    sg = SGLearner(cfg.model, cfg.sg, seed=0)
    first = sg.state()
    assert first.version == 0
    assert all(torch.count_nonzero(v) == 0 for k, v in first.weights.items() if "head" in k)
    _, result = stream.gradients(_walks(1, b=4, t=6)[0])
    sg.update([result.targets, result.targets])  # targets of two streams in one update
    second = sg.state()
    assert second.version == 1
    assert any(not torch.equal(first.weights[k], second.weights[k]) for k in first.weights)
    stream.load_sg(second)
    assert stream.sg_version == 1
    pred = sg.predict(result.targets.h, result.targets.y)
    torch.testing.assert_close(pred["oc"], stream.local_predict(result.targets.h, result.targets.y)["oc"])


def test_dimension_check_names_the_mismatch(small_cfg):
    sg = SGLearner(small_cfg().model, small_cfg().sg)
    sg.check_dims({"ic": 8, "oc": 8, "wc": 8, "target": 2})
    with pytest.raises(DimensionMismatch, match=r"ic=16 \(group has 8\).*target=5 \(group has 2\)"):
        sg.check_dims({"ic": 16, "oc": 8, "wc": 8, "target": 5})


def test_checkpoint_round_trip_weights_only(small_cfg, tmp_path):
    cfg = small_cfg()
    stream = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    sg = SGLearner(cfg.model, cfg.sg)
    _, result = stream.gradients(_walks(1, b=4, t=6)[0])
    sg.update([result.targets])
    torch.save(sg.state_dict(), tmp_path / "sg.pt")
    other = SGLearner(cfg.model, cfg.sg)
    other.load_state_dict(torch.load(tmp_path / "sg.pt", weights_only=True))
    assert other.version == 1
    sg.update([result.targets])
    other.update([result.targets])
    for k, v in sg.state().weights.items():
        torch.testing.assert_close(other.state().weights[k], v)


def test_coalesced_update_is_one_step_on_the_concatenated_batch(small_cfg):
    """update([a, b]) is one optimiser step on a and b as one batch (the server's group commit);
    sets of different sequence lengths (two streams with different windows) go in one update too."""
    cfg = small_cfg()
    stream = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    a, b = (stream.gradients(w)[1].targets for w in _walks(2, b=4, t=6))
    together, apart = SGLearner(cfg.model, cfg.sg, seed=0), SGLearner(cfg.model, cfg.sg, seed=0)
    together.update([a, b])
    cat = {f: {c: torch.cat([getattr(a, f)[c], getattr(b, f)[c]]) for c in a.h} for f in ("h", "g")}
    apart.update([SGTargets(cat["h"], torch.cat([a.y, b.y]), cat["g"])])
    assert together.version == apart.version == 1
    for k, v in together.state().weights.items():
        torch.testing.assert_close(apart.state().weights[k], v)
    longer = stream.gradients(_walks(1, b=3, t=9, seed=1)[0])[1].targets
    losses = together.update([a, longer, b])
    assert together.version == 2 and all(v > 0 for v in losses.values())


def test_targets_and_states_cross_the_wire_as_out_of_band_buffers(small_cfg):
    """Pickle protocol 5 (Ray's) carries the tensors as raw buffers and gives back writable tensors."""
    cfg = small_cfg()
    stream = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    targets = stream.gradients(_walks(1, b=4, t=6)[0])[1].targets
    state = SGLearner(cfg.model, cfg.sg).state()
    for obj, tensors in ((targets, [*targets.h.values(), targets.y, *targets.g.values()]),
                         (state, list(state.weights.values()))):
        buffers = []
        data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        assert len(buffers) == len(tensors) and len(data) < 4096
        back = pickle.loads(data, buffers=[memoryview(bytes(b.raw())) for b in buffers])
        flat = ([*back.h.values(), back.y, *back.g.values()] if obj is targets else list(back.weights.values()))
        for x, y in zip(tensors, flat):
            assert torch.equal(x, y)
            y.add_(0)  # writable


@pytest.mark.parametrize("scaling", ["rms", "none"])
def test_a_streams_copy_predicts_what_the_group_does_scaled_back(small_cfg, scaling):
    """sg.target_scaling=rms: the running RMS travels with the weights (SGState, checkpoints), so a
    stream's copy gives the group's prediction, scale * f(h, y), in the targets' own units."""
    cfg = small_cfg(f"sg.target_scaling={scaling}", "learner.mixing=bp_only")
    stream = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    sg = SGLearner(cfg.model, cfg.sg, seed=0)
    batches = _walks(3, b=4, t=6)
    results = [stream.gradients(b)[1] for b in batches]
    for r in results * 3:
        sg.update([r.targets])
    rms = {c: float(torch.cat([r.targets.g[c].flatten() for r in results]).pow(2).mean().sqrt()) for c in ("ic", "oc", "wc")}
    state = pickle.loads(pickle.dumps(sg.state()))  # as Ray carries it
    stream.load_sg(state)
    t = results[0].targets
    ours, group = stream.local_predict(t.h, t.y), sg.predict(t.h, t.y)
    for c in ("ic", "oc", "wc"):
        pred = sg.modules.predictors[c]
        assert float(stream.sg.predictors[c].scale) == float(pred.scale)
        assert float(pred.scale) == (pytest.approx(rms[c], rel=1e-5) if scaling == "rms" else 1.0)
        torch.testing.assert_close(ours[c], group[c])
        with torch.no_grad():
            torch.testing.assert_close(group[c], pred.normalised(t.h[c], t.y) * pred.scale)
        assert group[c].abs().mean() > 0
