"""Structured configuration: the one place where every default lives.

A run's configuration is the merge of three layers, later ones winning:

1. the dataclasses below (all defaults),
2. a YAML file (``configs/*.yaml``),
3. ``key=value`` overrides from the command line (OmegaConf dotlist syntax).

Any user mistake (unknown key, wrong type, out-of-range value, unknown choice)
raises :class:`ConfigError` with a one-line message naming the key; the CLI turns
it into exit code 2 without a traceback.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sharedsg.configcheck import (FOLDER_NAME_HINT, ConfigError, bounded, check_layer, check_values, choice, folder_name,
                                  is_folder_name, matching)


@dataclass
class ModelConfig:
    """The NMN (Eq. 1-8): encoder f^E, memory of ``slots`` x ``slot_width``, decoder f^D."""

    encoder: str = choice("lstm", "conv")  # lstm: LSTM(encoder_hidden) over (x, y) frames (Sec. 4.2); conv: Sec. 4.1
    input_dim: int = bounded(2, ge=1)  # features per frame for the lstm encoder
    encoder_hidden: int = bounded(30, ge=1)  # LSTM(30) of Sec. 4.2
    encoder_output: str = choice("last", "sequence")  # lstm: last = summary of the observed track for every step; sequence = per frame
    conv_channels: int = bounded(64, ge=1)  # Sec. 4.1: 3 blocks of 3x3 conv with 64 filters
    conv_blocks: int = bounded(3, ge=1)
    image_size: int = bounded(28, ge=1)
    slots: int = bounded(10, ge=1)  # l, memory slots (10 in both experiments of the paper)
    slot_width: int = bounded(32, ge=1)  # k, width of a slot = size of q_t, m_t and m'_t
    decoder: str = choice("regression", "classification")  # regression: dense(output_dim); classification: dense + softmax
    output_dim: int = bounded(2, ge=1)  # coordinates per frame, or number of classes
    # The paper's trajectory decoder uses ReLU, which cannot produce the negative half of
    # coordinates scaled to [-0.5, 0.5]; we default to a linear output (docs/design.md).
    output_activation: str = choice("linear", "tanh", "relu")
    # regression: f^D gives each future frame relative to the last observed frame (added back),
    # so the absolute position need not pass through the memory's attention; false = Eq. 8 as printed
    predict_offsets: bool = True
    # Memory as printed in the paper (Eq. 3, 7): addressing=dot memory_init=random persist_memory=true.
    # With it the attention is uniform from the first batch, every write reaches every slot and
    # the slots become identical, so the input no longer reaches the output (docs/design.md, "The NMN
    # as printed"). The defaults keep the slots apart: cosine addressing with a key strength
    # (NTM/DNC content addressing) and an initial memory learned by back-propagation.
    addressing: str = choice("dot", "cosine", default="cosine")  # dot: z = softmax(q^T M) (Eq. 3); cosine: softmax(strength * cos(q, M_i))
    address_strength: float = bounded(10.0, gt=0)
    memory_init: str = choice("learned", "random")  # learned: every batch starts from a trained content; random: a fixed draw
    persist_memory: bool = False  # carry memory and controller states across batches (needs memory_init=random)
    # fast: the memory module's hand-fused forward/backward (sharedsg/model/fused.py); reference: the
    # per-step autograd graph. Same outputs, losses and gradients (tests: 1e-5)
    impl: str = choice("fast", "reference")


@dataclass
class SGConfig:
    """Synthetic-gradient predictors SG^IC, SG^OC, SG^WC (Eq. 9-11) and how streams share them."""

    kind: str = choice("lstm", "mlp")  # lstm (the paper) or mlp
    hidden: int = bounded(64, ge=1)
    lr: float = bounded(9e-3, gt=0)  # Adam learning rate of the SG modules (Eq. 11; docs/results/sg_fit.md)
    updates_per_push: int = bounded(1, ge=1)  # optimiser steps on each pushed set of targets
    # rms: each predictor fits its targets divided by their running RMS and scales its prediction back
    # (model/synthetic.py); none: raw targets (docs/results/sg_fit.md: sharedsg bench sg-fit)
    target_scaling: str = choice("rms", "none")
    scale_momentum: float = bounded(0.01, gt=0, le=1)  # weight of an update in the running RMS (after 1/it updates)
    # the y_t of Eq. 9 for trajectories: decoder = in the frame the decoder predicts (minus the last observed
    # frame with model.predict_offsets: the prediction's error is then a function of (h, y)); data = as the data gives it
    y_frame: str = choice("decoder", "data")
    # shared: one group for all streams; separate: one group per stream; both: knowledge_sharing runs both arms
    sharing: str = choice("shared", "separate", "both")
    transport: str = choice("replica", "rpc")  # replica: local SG copy refreshed by version; rpc: server predicts
    # replica: fetch newer weights (in the background) once the copy is this many versions
    # behind, and wait for them only when it is further behind
    max_staleness: int = bounded(1, ge=0)
    checkpoint_every_pushes: int = bounded(50, ge=1)  # server checkpoint interval K (pushes) ...
    checkpoint_every_s: float = bounded(30.0, ge=0)  # ... or S seconds, whichever comes first
    max_inflight_pushes: int = bounded(4, ge=1)  # replica: un-acknowledged pushes a stream may have before it waits (runtime)
    # a group's learner takes up to this many accepted pushes into one update (one Adam step on their
    # concatenated batch, one version); 1: an update per push
    coalesce_max: int = bounded(8, ge=1)
    # how a group trains on what it accepted (runtime): exact = every pushed target set once, each stream's
    # in the order sent (pushes wait when sg.buffer_size are queued; experiment.synchronous always uses it);
    # buffered = the newest sg.buffer_size sets, newest first, at the learner's pace (evictions counted)
    policy: str = choice("exact", "buffered", default="buffered")
    buffer_size: int = bounded(64, ge=1)  # target sets a group holds before exact makes pushes wait / buffered evicts
    # a group queues each stream's pushes in the order sent: a push that overtook an earlier one waits for it
    # this long at most (it waits out the limit only for a push lost with a group that crashed)
    reorder_wait_s: float = bounded(5.0, ge=0)
    # dtype of the pushed targets on the wire (runtime): float16 halves the bytes per push; the group
    # trains in float32 either way (SG quality: docs/runtime.md)
    wire_dtype: str = choice("float32", "float16")


@dataclass
class ApiConfig:
    """A model's endpoint of the public API (:func:`sharedsg.api.connect`, docs/api.md)."""

    # how the synthetic gradient s = SG(h, y) reaches what lies below a marked activation h:
    # add = true gradient + alpha * s (Eq. 10's fast step, taken by the model's own optimiser);
    # decoupled = s instead of the true gradient (DNI); send = the true gradient only (targets still sent)
    mode: str = choice("add", "decoupled", "send")
    alpha: float = bounded(1.0, gt=0)  # add: the weight of s (Eq. 10's alpha relative to the optimiser's rate)
    # how the model's loss reduces over the batch: mean = targets are B * dL/dh, the per-sample loss
    # gradients the SG predicts (the project's convention), and s / B is applied; sum = as they come
    loss: str = choice("mean", "sum")
    fit_window: int = bounded(50, ge=1)  # steps that fit() averages over


@dataclass
class LearnerConfig:
    """How one stream learns (docs/design.md, 'One training step of a stream')."""

    mixing: str = choice("bp_only", "sg_only", "sum", "lambda", default="sum")  # bp_only (baseline NMN) | sg_only (pure DNI) | sum | lambda
    lam: float = bounded(0.5, ge=0, le=1)  # lambda mode: controller grad = (1 - lam) * true + lam * synthetic
    lr: float = bounded(1e-3, gt=0)  # Adam learning rate of the NMN (the slow path)
    # sgd: the fast path is its own step, theta_c -= fast_lr * SG . dh_c/dtheta_c (Eq. 10);
    # adam: true and synthetic gradients mixed into one Adam step
    fast_update: str = choice("sgd", "adam")
    fast_lr: float = bounded(1.0, gt=0)  # alpha of Eq. 10 (synthetic gradients are per-sample loss gradients)
    # how s_t = SG(h_t, y_t) reaches theta_c (Eq. 10). step: through step t alone, the recurrent
    # h_{t-1} held fixed (s_t estimates the total dL/dh_t, which already holds the path through
    # h_{t+1}; an oracle SG gives exactly the true gradient); unroll: through the controller's own
    # recurrence across the batch (counts that path twice; the form used before)
    fast_path: str = choice("step", "unroll")
    grad_clip: float = bounded(0.0, ge=0)  # max global grad norm; 0 disables clipping
    batch_size: int = bounded(32, ge=1)
    # cpu | cuda | cuda:N for --local runs (the Ray runtime uses the GPU Ray assigned)
    device: str = matching("cpu", r"cpu|cuda(:[0-9]+)?", "cpu, cuda or cuda:N")


@dataclass
class DataConfig:
    """Where the data comes from and how trajectories are windowed."""

    format: str = choice("sample", "sdd", "ind", "omniglot", "mnist")  # sample (shipped SDD subset) | sdd | ind | omniglot | mnist
    # empty: $SHAREDSG_DATA, else the per-user data folder (see data_root); pinned where the config is
    # loaded when that folder exists there (pin_data_root), else each node resolves its own
    root: str = ""
    cache_dir: str = ""  # empty: $SHAREDSG_CACHE, else ~/.cache/sharedsg
    obs_len: int = bounded(50, ge=1)  # observed frames (Sec. 4.2)
    pred_len: int = bounded(50, ge=1)  # predicted frames
    frame_rate: float = bounded(25.0, gt=0)  # trajectories are resampled to this rate (inD's 25 Hz)
    window_stride: int = bounded(50, ge=1)  # frames between window starts within a track
    test_fraction: float = bounded(0.2, gt=0, lt=1)  # fraction of tracks held out (split by track)
    max_train_tracks: int = bounded(0, ge=0)  # 0 = all; e.g. 150 cyclist trajectories in Sec. 4.2
    split_seed: int = bounded(0, ge=0)
    sdd_fps: float = bounded(29.97, gt=0)  # native frame rate of the SDD videos (resampled to frame_rate)
    # `sharedsg data download` sources (base URLs; each file's sha256 / raw MD5 is checked)
    omniglot_url: str = "https://raw.githubusercontent.com/bitsandscraps/omniglot/b0481240b7eb42393285a93ce7d2f266ff10c62b/"
    mnist_url: str = "https://ossci-datasets.s3.amazonaws.com/mnist/"


@dataclass
class ScheduleConfig:
    """When a stream trains: at iterations start, start + every, start + 2 * every, ..."""

    start: int = bounded(0, ge=0)
    every: int = bounded(1, ge=1)
    batch_size: int = bounded(0, ge=0)  # 0: learner.batch_size


@dataclass
class StreamConfig:
    """One NMN stream: which class of data it learns from and when."""

    data_class: str = "cyclist"  # cyclist | pedestrian for trajectories; a split name otherwise
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    group: str = folder_name("", optional=True)  # SG group; empty: from sg.sharing (one "shared" group, or one per stream)
    seed: int = bounded(-1, ge=0, also=(-1,))  # -1: experiment.seed * 1000 + the stream's position in the config


@dataclass
class ExperimentConfig:
    name: str = folder_name("experiment")  # the folder <storage>/<name>/ and the Ray actors' names
    kind: str = "train"  # which module of sharedsg.experiments runs it
    iterations: int = bounded(100, ge=1)
    seed: int = bounded(0, ge=0)
    seeds: List[int] = bounded(factory=lambda: [0, 1, 2], ge=0)  # multi-seed experiments (knowledge_sharing, metatest)
    eval_every: int = bounded(10, ge=1)  # iterations between evaluations on held-out data
    eval_batches: int = bounded(4, ge=1)
    # where every node writes events, checkpoints, figures and results.json: <storage>/<experiment>/<run>/;
    # a local or shared-filesystem path (a relative one is made absolute on the driver) or a URI
    # (s3://, gs://, file://; needs pyarrow). sharedsg/storage.py
    storage: str = "runs"
    run_dir: str = ""  # the former name of storage, still accepted; after loading it equals storage
    run_name: str = folder_name("", optional=True)  # the folder <storage>/<name>/<run_name>/; empty: a timestamp
    attachable: bool = False
    # Ray: streams scheduled in one iteration step one after another, in config order, each
    # waiting for its push (LocalBackend's order; with sg.transport=rpc the losses match --local)
    synchronous: bool = False
    progress: bool = True
    progress_every_s: float = bounded(30.0, gt=0)  # seconds between the progress tables of a sweep's (or meta-test's) running jobs


@dataclass
class ResourcesConfig:
    """What a run reserves on Ray (sharedsg/runtime/hosting/placement.py: one placement group per run)."""

    # GPUs per stream actor, a string: "auto" (the streams share the GPUs there are: 1/k of a GPU each,
    # the smallest k that fits them all; none: CPU) or a number ("0", "0.25" packs four streams on a GPU, "1")
    gpus_per_stream: str = matching("auto", r"auto|[0-9]+(\.[0-9]*)?|\.[0-9]+", "auto or a number of GPUs >= 0 (e.g. 0.25, 1)")
    # auto: the GPUs the streams may share; -1: those of the nodes up now; N: N GPUs, which an
    # autoscaling cluster starts on request (its GPU workers may be 0 when the run starts)
    max_gpus: int = bounded(-1, ge=0, also=(-1,))
    cpus_per_stream: float = bounded(1.0, gt=0)
    server_cpus: float = bounded(1.0, ge=0)  # CPUs reserved for each SG group actor of the server (runtime)
    server_gpus: float = bounded(0.0, ge=0)  # GPUs for each SG group actor (its SGLearner and rpc predictions); 0: CPU
    gpus_per_job: float = bounded(0.0, ge=0)  # GPUs for each Omniglot / MNIST / meta-test job actor or task
    # seconds to wait for the run's placement group; then one line says what is missing (exit 2)
    placement_timeout_s: float = bounded(120.0, ge=0)
    # a stream or job handed a GPU by Ray stops when this torch cannot use CUDA; false: compute on
    # the CPU (a Ray that declares GPUs it does not have, as in the tests)
    require_cuda: bool = True
    max_restarts: int = bounded(-1, ge=0, also=(-1,))  # Ray restarts of a crashed server or stream actor (-1: unlimited)
    stream_checkpoint_every: int = bounded(25, ge=0)  # steps between a stream actor's own checkpoints (0: never)
    object_store_mb: int = bounded(200, ge=75)  # object store of the embedded Ray that `sharedsg run` starts without an address
    # Ray's max_direct_call_object_size for a Ray that sharedsg starts (embedded or the local head): task
    # arguments and returns up to this size (a stream's push, a group's SG weights) go straight from
    # process to process instead of through the object store (Ray's default 100 KB: docs/runtime.md)
    inline_object_kb: int = bounded(2048, ge=1)


FEWSHOT_METHODS = ("proposed", "baseline", "maml", "protonet", "mann")


@dataclass
class FewShotConfig:
    """Omniglot N-way K-shot (Sec. 4.1), Table 1, and the episode protocol (docs/results/omniglot.md).

    proposed / baseline: the NMN as a memory-augmented learner (sharedsg/learn/fewshot.py): one
    episode is one sequence (support items with their labels, then the queries), the memory and
    controller states persist within it; proposed adds the fast step of Eq. 10 from synthetic
    gradients. maml: Finn et al.'s protocol; protonet: Snell et al.'s; mann: Santoro et al.'s.
    Every method trains until ``meta_iterations`` or its ``cpu_s`` budget, whichever comes first.
    """

    ways: int = bounded(5, ge=2)  # N; the classifier has N outputs
    shots: int = bounded(1, ge=1)  # K support images per class
    queries: int = bounded(5, ge=0)  # Q query images per class (meta-training and test)
    settings: List[str] = field(default_factory=list)  # sweep: e.g. [5w1s, 20w5s]; empty: the one (ways, shots)
    methods: List[str] = choice(*FEWSHOT_METHODS, factory=lambda: ["proposed", "baseline", "maml"])  # also mann, protonet
    # training seeds, one job '<setting>-<method>-s<seed>' each; empty: experiment.seed, job '<setting>-<method>'
    seeds: List[int] = bounded(factory=list, ge=0)
    meta_lr: float = bounded(1e-3, gt=0)  # Adam learning rate of every method's meta-weights (Finn et al. and Snell et al.: 1e-3)
    meta_batch: int = bounded(4, ge=1)  # episodes per meta-update, for a method not in meta_batches
    meta_batches: Dict[str, int] = bounded(factory=dict, ge=1)  # per-method episodes per meta-update (e.g. maml: 32)
    meta_iterations: int = bounded(300, ge=0)  # cap on the meta-updates of every job
    # per-method meta-training budget in CPU seconds of the job's process (time.process_time: on a machine
    # shared with other work a wall-clock budget would depend on the load; wall time is reported too); absent: none
    cpu_s: Dict[str, float] = bounded(factory=dict, gt=0)
    test_episodes: int = bounded(1000, ge=0)  # held-out episodes for the accuracy and its 95% CI (the same episodes for every method and seed)
    val_every: int = bounded(0, ge=0)  # meta-iterations between validation accuracies (0: no validation curve)
    val_episodes: int = bounded(100, ge=1)  # held-out-character episodes per validation point (a stream disjoint from the test episodes)
    # MAML (Finn et al.): inner SGD steps and step size (theirs: 1 x 0.4 for 5-way, 5 x 0.1 for 20-way)
    adapt_steps: int = bounded(1, ge=1)
    inner_lr: float = bounded(0.4, gt=0)
    test_adapt_steps: int = bounded(-1, ge=0, also=(-1,))  # MAML's inner steps at test time; -1: adapt_steps
    maml_order: int = choice(1, 2, default=2)  # 2: second-order MAML; 1: first order
    maml_order_20way: int = choice(1, 2)  # order used when ways >= 20 (first order allowed there)
    maml_train_queries: int = bounded(1, ge=1)  # MAML's query images per class in its meta-training episodes (Finn et al.: 1)
    # MAML episodes differentiated at once (one vmap chunk; 0: the whole meta-batch). Memory grows with it:
    # second order on 20w5s (5 inner steps over 100 support images) holds ~2.8 GB per episode, so the whole
    # meta-batch of 16 outgrew a 24 GB machine; any chunk gives the same meta-gradient (1 is faster on a CPU)
    maml_vmap_chunk: int = bounded(0, ge=0)
    maml_conv_blocks: int = bounded(4, ge=1)  # MAML's and the prototypical network's conv blocks (4 x 64 filters: 28x28 -> 64-d)
    protonet_train_ways: int = bounded(20, ge=2)  # the prototypical network's meta-training episodes have max(this, N) ways
    # The NMN memory learner: a support item enters with its own one-hot label (own) or with the
    # previous item's (previous, MANN's offset); mann always uses previous (its authors' protocol)
    label_input: str = choice("own", "previous")
    # MANN's per-step loss for the NMN memory learner: every support item's label is predicted, f^D(m_t)
    # (Eq. 8 at that step), before it is shown (needs label_input=previous); the episode's loss is the mean
    # cross-entropy over the S support and Q query predictions, so the SG targets of the support steps
    # (Eq. 11) include the gradient of each step's own prediction (docs/results/sg_fit.md)
    step_loss: bool = False
    # What the NMN memory learner's write controller takes: m (Eq. 6: m'_t = WC(m_t), so the item
    # reaches the memory only through the address z_t) or mq (not the paper: WC([m_t, q_t]), so
    # what is written can carry the item) or q (not the paper: m'_t = q_t, the IC's key is written as
    # MANN writes its key, and there is no WC); docs/design.md, "Where the item enters the memory"
    write_input: str = choice("m", "mq", "q")
    # What the NMN memory learner's output controller takes (docs/results/fewshot_nmn.md): read (Eq. 5 as
    # printed: m_t = OC(m_bar_t), so what is written, WC(m_t), is a function of what was read) or read_query
    # (the compose step of Neural Semantic Encoders [44], which the paper cites: m_t = OC([m_bar_t, q_t]))
    oc_input: str = choice("read", "read_query")
    # How f^E's 576-d conv features enter the memory learner's input controller (docs/results/fewshot_nmn.md):
    # raw (as printed with PyTorch's LSTMCell init: the gates' pre-activations from the image have std ~3 and
    # a third of them |pre| > 3 at initialisation); layernorm (f^E's output through a LayerNorm); fan_in (the
    # image columns of the IC's weight_ih drawn from U(+-1/sqrt(D)), D the feature width, not U(+-1/sqrt(k)));
    # layernorm_fan_in (both: pre-activation std ~0.6, none saturated)
    ic_input: str = choice("raw", "layernorm", "fan_in", "layernorm_fan_in")
    # Where the proposed NMN's per-episode fast weights (Eq. 10) act: support (the support items are run
    # again with them, so the memory is written by the adapted IC and OC, and the queries read it with the
    # meta-weights: with an oracle SG this is a true-gradient step of the query loss) or queries (the
    # queries' IC and OC steps use them and the support pass is not re-run: not a descent step even with
    # an oracle SG; docs/results/omniglot.md, "How much a perfect SG could add")
    fast_weights: str = choice("support", "queries")
    mann_reads: int = bounded(4, ge=1)  # MANN: read heads (Santoro et al.: 4)
    mann_controller: int = bounded(200, ge=1)  # MANN: LSTM controller units (Santoro et al.: 200)
    mann_slots: int = bounded(128, ge=1)  # MANN: memory slots (Santoro et al.: 128 x 40)
    mann_width: int = bounded(40, ge=1)
    checkpoint_every: int = bounded(25, ge=1)  # meta-iterations (and test episodes x 4) between job checkpoints
    log_every: int = bounded(5, ge=1)  # meta-iterations between logged scalars


@dataclass
class RareConfig:
    """MNIST rare-class ablation (Sec. 5.1): classes 0-4 always, a batch of classes 5-9 every ``period``."""

    period: int = bounded(500, ge=1)  # rare iterations: period, 2 * period, ...
    rare_batch: int = bounded(10, ge=1)  # images in a rare batch
    methods: List[str] = choice("proposed", "baseline", factory=lambda: ["proposed", "baseline"])
    test_every: int = bounded(250, ge=1)  # iterations between rare-class test accuracies (and at every rare iteration + 1)
    test_images: int = bounded(500, ge=0)  # unseen test images of classes 5-9 per test (0: all 4,861)
    test_context: int = bounded(1, ge=1)  # labelled training images of each class 0-4 that precede the test queries in the sequence
    checkpoint_every: int = bounded(250, ge=1)


@dataclass
class MetaTestConfig:
    """Sec. 4.2 / Fig. 4: pre-train on cyclists, adapt on a few pedestrians, track held-out MSE."""

    pretrain_iterations: int = bounded(100, ge=0)  # on the cyclist training windows (Sec. 4.2: 100)
    adapt_iterations: int = bounded(100, ge=1)  # steps on the adaptation set, held-out MSE after each
    adapt_examples: int = bounded(10, ge=1)  # pedestrian windows to adapt on (Sec. 4.2: 10)
    eval_windows: int = bounded(256, ge=1)  # held-out pedestrian windows for the MSE
    methods: List[str] = choice(
        "proposed", "baseline", "maml2", "maml1", "supervised",
        factory=lambda: ["proposed", "baseline", "maml2", "maml1", "supervised"],
    )  # proposed: NMN with sum mixing; baseline: NMN bp_only; maml2/maml1: MAML second/first order; supervised: LSTM enc-dec
    seq2seq_hidden: int = bounded(30, ge=1)  # the supervised LSTM encoder-decoder (stand-in for [50]) and MAML's network
    maml_inner_lr: float = bounded(0.05, gt=0)  # SGD step size of MAML's inner loop (stable with maml_offsets; docs/results/trajectory_metatest.md, "MAML's network")
    maml_inner_steps: int = bounded(1, ge=1)
    maml_tasks: int = bounded(2, ge=1)  # tasks per meta-batch; a task = support + query sets of adapt_examples windows
    # zero: MAML's network starts with a zero output layer (predict "stay at the last observed position");
    # default: PyTorch's init, whose per-step displacements add up over 50 frames to an initial MSE ~35
    maml_decoder_init: str = choice("zero", "default")
    # true: MAML's network predicts each future frame as an offset from the last observed one
    # (model/seq2seq.py, offsets=True); false: the Seq2Seq's cumulative displacements, whose loss is so stiff
    # along the output layer that SGD diverges above a rate of ~2e-3 and Adam 1e-3 drifts (docs/results/trajectory_metatest.md)
    maml_offsets: bool = True


@dataclass
class Config:
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sg: SGConfig = field(default_factory=SGConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    streams: Dict[str, StreamConfig] = field(
        default_factory=lambda: {"cyclist": StreamConfig()}
    )
    fewshot: FewShotConfig = field(default_factory=FewShotConfig)
    rare: RareConfig = field(default_factory=RareConfig)
    metatest: MetaTestConfig = field(default_factory=MetaTestConfig)



def _one_line(exc: OmegaConfBaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    key = getattr(exc, "full_key", None)
    if key and key not in msg:
        return f"{key}: {msg}"
    return msg


def read_yaml_mapping(path: str | os.PathLike, what: str = "config file",
                      hint: str = "pass a YAML file such as configs/local_small.yaml") -> DictConfig:
    """A YAML file whose top level is a mapping of settings (an empty file: no settings)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist; {hint}")
    try:
        tree = yaml.safe_load(p.read_text())
        if tree is not None and not isinstance(tree, dict):
            kind = "a list" if isinstance(tree, list) else f"the {type(tree).__name__} {tree!r}"
            raise ConfigError(f"{what} {p}: the top level must be a mapping of settings (e.g. 'model:'), not {kind}")
        return OmegaConf.load(p) if tree else OmegaConf.create({})  # OmegaConf's YAML reads 1e-3 as a float
    except ConfigError:
        raise
    except Exception as exc:  # yaml.YAMLError, UnicodeDecodeError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{what} {p} is not valid YAML: {first}") from None


def load_config(path: Optional[str | os.PathLike] = None, overrides: List[str] = ()) -> DictConfig:
    """Merge defaults, an optional YAML file and ``key=value`` overrides; validate the result."""
    layers: List[DictConfig] = []
    if path is not None:
        layers.append(read_yaml_mapping(path))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value; write e.g. model.slots=10")
    try:
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        for layer in layers:
            check_layer(layer, Config)
        cfg = OmegaConf.merge(OmegaConf.structured(Config), *layers)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {_one_line(exc)}") from None
    validate(cfg)
    resolve_storage(cfg)
    pin_data_root(cfg)
    return cfg


def resolve_storage(cfg: DictConfig) -> None:
    """``experiment.storage`` (or its former name ``experiment.run_dir``) made absolute, here on the
    driver; afterwards both fields hold it."""
    from sharedsg.storage import resolve_root

    e = cfg.experiment
    default = ExperimentConfig.storage
    if e.run_dir and e.storage != default and resolve_root(e.run_dir) != resolve_root(e.storage):
        raise ConfigError(f"config error: experiment.run_dir: '{e.run_dir}' and experiment.storage: '{e.storage}' "
                          f"differ; run_dir is the former name of storage, give only storage")
    root = resolve_root(e.run_dir or e.storage)
    e.storage = e.run_dir = root


def validate(cfg: DictConfig) -> None:
    """Every value against its field's declaration (sharedsg.configcheck), then the rules between fields."""
    try:
        check_values(cfg, Config)
    except OmegaConfBaseException as exc:  # e.g. an interpolation that does not resolve
        raise ConfigError(f"config error: {_one_line(exc)}") from None
    if cfg.model.persist_memory and cfg.model.memory_init == "learned":
        raise ConfigError("config error: model.persist_memory: true needs model.memory_init=random "
                          "(a learned initial memory is where every batch starts)")
    if cfg.sg.sharing == "both" and cfg.experiment.kind != "knowledge_sharing":
        raise ConfigError("config error: sg.sharing: 'both' runs the two arms of experiment.kind=knowledge_sharing; "
                          "pick shared or separate for this experiment")
    if not cfg.streams:
        raise ConfigError("config error: streams: at least one stream is needed, e.g. streams.cyclist.data_class=cyclist")
    for name in cfg.streams:
        if not is_folder_name(str(name)):
            raise ConfigError(f"config error: streams: the stream name '{name}' must be {FOLDER_NAME_HINT} "
                              f"(it names the stream's folder in the run)")
    for setting in cfg.fewshot.settings:
        parse_setting(setting)
    for kind in ("meta_batches", "cpu_s"):
        for m in cfg.fewshot[kind]:
            if m not in FEWSHOT_METHODS:
                raise ConfigError(f"config error: fewshot.{kind}: '{m}' is not one of {', '.join(FEWSHOT_METHODS)}")
    if cfg.fewshot.step_loss and cfg.fewshot.label_input != "previous":
        raise ConfigError("config error: fewshot.step_loss: each support item would be shown the label it is to "
                          "predict; add fewshot.label_input=previous")
    if len(set(cfg.fewshot.seeds)) != len(cfg.fewshot.seeds):
        raise ConfigError(f"config error: fewshot.seeds: {list(cfg.fewshot.seeds)} repeats a seed")


def parse_setting(setting: str) -> tuple:
    """'5w1s' -> (5, 1); raises ConfigError on anything else."""
    m = re.fullmatch(r"(\d+)w(\d+)s", str(setting))
    if not m or int(m.group(1)) < 2 or int(m.group(2)) < 1:
        raise ConfigError(f"config error: fewshot.settings: '{setting}' is not NwKs (e.g. 5w1s, 20w5s)")
    return int(m.group(1)), int(m.group(2))


def user_data_dir() -> Path:
    """The per-user data folder that ``sharedsg data download`` fills: ``$XDG_DATA_HOME/sharedsg``,
    else ``~/.local/share/sharedsg``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "sharedsg"


def data_root(root: str = "") -> Path:
    """``root`` (``data.root``), else ``$SHAREDSG_DATA``, else :func:`user_data_dir`."""
    chosen = root or os.environ.get("SHAREDSG_DATA") or ""
    return Path(chosen).expanduser() if chosen else user_data_dir()


def pin_data_root(cfg: DictConfig) -> None:
    """Write the data root this machine resolves into ``cfg`` (``data.root``) when that folder exists
    here: every actor then reads the folder the driver checked, whatever ``SHAREDSG_DATA`` its Ray was
    started with. A driver without it (a laptop submitting to a cluster) leaves ``data.root`` empty, and
    each node resolves its own (``SHAREDSG_DATA`` in its environment, else its per-user folder)."""
    root = data_root(cfg.data.root)
    if root.is_dir():
        cfg.data.root = str(root)


def cache_dir(cache: str = "") -> Path:
    """``cache`` (``data.cache_dir``), else ``$SHAREDSG_CACHE``, else ``~/.cache/sharedsg``."""
    chosen = cache or os.environ.get("SHAREDSG_CACHE") or ""
    return Path(chosen).expanduser() if chosen else Path.home() / ".cache" / "sharedsg"


def check_device(device: str) -> None:
    """A one-line ConfigError when ``learner.device`` names a CUDA device this machine does not have."""
    if not device.startswith("cuda"):
        return
    import torch  # only here: loading a config needs no torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        have = f"only {count} CUDA device(s)" if count else "no CUDA device (torch.cuda.is_available() is false)"
        raise ConfigError(f"config error: learner.device: '{device}' but this machine has {have}; use learner.device=cpu")
