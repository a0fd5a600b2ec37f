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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sharedsg.errors import UserError

MIXING_MODES = ("bp_only", "sg_only", "sum", "lambda")
FAST_UPDATES = ("sgd", "adam")
ENCODERS = ("lstm", "conv")
ENCODER_OUTPUTS = ("last", "sequence")
ADDRESSING = ("dot", "cosine")
MEMORY_INITS = ("learned", "random")
DECODERS = ("regression", "classification")
OUTPUT_ACTIVATIONS = ("linear", "tanh", "relu")
SG_KINDS = ("lstm", "mlp")
SHARING = ("shared", "separate")
TRANSPORTS = ("replica", "rpc")
DATA_FORMATS = ("sample", "sdd", "ind", "omniglot", "mnist")


class ConfigError(UserError, ValueError):
    """A user mistake in a configuration; the message is one line naming the key."""


@dataclass
class ModelConfig:
    """The NMN (Eq. 1-8): encoder f^E, memory of ``slots`` x ``slot_width``, decoder f^D."""

    encoder: str = "lstm"  # lstm: LSTM(encoder_hidden) over (x, y) frames (Sec. 4.2); conv: Sec. 4.1
    input_dim: int = 2  # features per frame for the lstm encoder
    encoder_hidden: int = 30  # LSTM(30) of Sec. 4.2
    encoder_output: str = "last"  # lstm: last = summary of the observed track for every step; sequence = per frame
    conv_channels: int = 64  # Sec. 4.1: 3 blocks of 3x3 conv with 64 filters
    conv_blocks: int = 3
    image_size: int = 28
    slots: int = 10  # l, memory slots (10 in both experiments of the paper)
    slot_width: int = 32  # k, width of a slot = size of q_t, m_t and m'_t
    decoder: str = "regression"  # regression: dense(output_dim); classification: dense + softmax
    output_dim: int = 2  # coordinates per frame, or number of classes
    # The paper's trajectory decoder uses ReLU, which cannot produce the negative half of
    # coordinates scaled to [-0.5, 0.5]; we default to a linear output (see README).
    output_activation: str = "linear"
    # regression: f^D gives each future frame relative to the last observed frame (added back),
    # so the absolute position need not pass through the memory's attention; false = Eq. 8 as printed
    predict_offsets: bool = True
    # Memory as printed in the paper (Eq. 3, 7): addressing=dot memory_init=random persist_memory=true.
    # With it the attention is uniform from the first batch, every write reaches every slot and
    # the slots become identical, so the input no longer reaches the output (README, "The NMN
    # as printed"). The defaults keep the slots apart: cosine addressing with a key strength
    # (NTM/DNC content addressing) and an initial memory learned by back-propagation.
    addressing: str = "cosine"  # dot: z = softmax(q^T M) (Eq. 3); cosine: softmax(strength * cos(q, M_i))
    address_strength: float = 10.0
    memory_init: str = "learned"  # learned: every batch starts from a trained content; random: a fixed draw
    persist_memory: bool = False  # carry memory and controller states across batches (needs memory_init=random)


@dataclass
class SGConfig:
    """Synthetic-gradient predictors SG^IC, SG^OC, SG^WC (Eq. 9-11) and how streams share them."""

    kind: str = "lstm"  # lstm (the paper) or mlp
    hidden: int = 64
    lr: float = 1e-3  # Adam learning rate of the SG modules (Eq. 11)
    updates_per_push: int = 1  # optimiser steps on each pushed set of targets
    sharing: str = "shared"  # shared: one group for all streams; separate: one group per stream
    transport: str = "replica"  # replica: local SG copy refreshed by version; rpc: server predicts
    # replica: fetch newer weights (in the background) once the copy is this many versions
    # behind, and wait for them only when it is further behind
    max_staleness: int = 1
    checkpoint_every_pushes: int = 50  # server checkpoint interval K (pushes) ...
    checkpoint_every_s: float = 30.0  # ... or S seconds, whichever comes first
    max_inflight_pushes: int = 4  # replica: un-acknowledged pushes a stream may have before it waits (runtime)
    # the server merges up to this many queued pushes (of one group) into one update; 1: an update per push
    coalesce_max: int = 8
    # replica: before an update the server waits up to this long for a push from every other stream of
    # the group that pushed in the last second (one update per round of streams; 0: update at once)
    coalesce_wait_ms: float = 50.0


@dataclass
class LearnerConfig:
    """How one stream learns (DESIGN.md, 'One training step of a stream')."""

    mixing: str = "sum"  # bp_only (baseline NMN) | sg_only (pure DNI) | sum | lambda
    lam: float = 0.5  # lambda mode: controller grad = (1 - lam) * true + lam * synthetic
    lr: float = 1e-3  # Adam learning rate of the NMN (the slow path)
    # sgd: the fast path is its own step, theta_c -= fast_lr * SG . dh_c/dtheta_c (Eq. 10);
    # adam: true and synthetic gradients mixed into one Adam step
    fast_update: str = "sgd"
    fast_lr: float = 1.0  # alpha of Eq. 10 (synthetic gradients are per-sample loss gradients)
    grad_clip: float = 0.0  # max global grad norm; 0 disables clipping
    batch_size: int = 32
    device: str = "cpu"  # cpu | cuda (the runtime uses the GPU Ray assigned)


@dataclass
class DataConfig:
    """Where the data comes from and how trajectories are windowed."""

    format: str = "sample"  # sample (shipped SDD subset) | sdd | ind | omniglot | mnist
    root: str = ""  # empty: $SHAREDSG_DATA, else ../shared/data beside the repository
    cache_dir: str = ""  # empty: $SHAREDSG_CACHE, else ~/.cache/sharedsg
    obs_len: int = 50  # observed frames (Sec. 4.2)
    pred_len: int = 50  # predicted frames
    frame_rate: float = 25.0  # trajectories are resampled to this rate (inD's 25 Hz)
    window_stride: int = 50  # frames between window starts within a track
    test_fraction: float = 0.2  # fraction of tracks held out (split by track)
    max_train_tracks: int = 0  # 0 = all; e.g. 150 cyclist trajectories in Sec. 4.2
    split_seed: int = 0
    sdd_fps: float = 29.97  # native frame rate of the SDD videos (resampled to frame_rate)
    # `sharedsg data download` sources (base URLs; each file's sha256 / raw MD5 is checked)
    omniglot_url: str = "https://raw.githubusercontent.com/bitsandscraps/omniglot/b0481240b7eb42393285a93ce7d2f266ff10c62b/"
    mnist_url: str = "https://ossci-datasets.s3.amazonaws.com/mnist/"


@dataclass
class ScheduleConfig:
    """When a stream trains: at iterations start, start + every, start + 2 * every, ..."""

    start: int = 0
    every: int = 1
    batch_size: int = 0  # 0: learner.batch_size


@dataclass
class StreamConfig:
    """One NMN stream: which class of data it learns from and when."""

    data_class: str = "cyclist"  # cyclist | pedestrian for trajectories; a split name otherwise
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    group: str = ""  # SG group; empty: from sg.sharing (one "shared" group, or one per stream)
    seed: int = -1  # -1: experiment.seed * 1000 + the stream's position in the config


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    kind: str = "train"  # which module of sharedsg.experiments runs it
    iterations: int = 100
    seed: int = 0
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])  # multi-seed experiments (knowledge_sharing, metatest)
    eval_every: int = 10  # iterations between evaluations on held-out data
    eval_batches: int = 4
    run_dir: str = "runs"  # runs/<experiment>/<run>/<stream>/
    run_name: str = ""  # empty: a timestamp
    attachable: bool = False
    # Ray: streams scheduled in one iteration step one after another, in config order, each
    # waiting for its push (LocalBackend's order; with sg.transport=rpc the losses match --local)
    synchronous: bool = False
    progress: bool = True


@dataclass
class ResourcesConfig:
    gpus_per_stream: float = -1.0  # -1: 1 when the cluster has GPUs, else 0
    cpus_per_stream: float = 1.0
    server_cpus: float = 1.0  # CPUs reserved for the SG server actor (runtime)
    max_restarts: int = -1  # Ray restarts of a crashed server or stream actor (-1: unlimited)
    stream_checkpoint_every: int = 25  # steps between a stream actor's own checkpoints (0: never)
    object_store_mb: int = 200  # object store of the embedded Ray that `sharedsg run` starts without an address


FEWSHOT_METHODS = ("proposed", "baseline", "maml", "protonet", "mann")
FEWSHOT_LABEL_INPUTS = ("own", "previous")


@dataclass
class FewShotConfig:
    """Omniglot N-way K-shot (Sec. 4.1), Table 1, and the episode protocol (docs/classification.md).

    proposed / baseline: the NMN as a memory-augmented learner (sharedsg/learn/fewshot.py): one
    episode is one sequence (support items with their labels, then the queries), the memory and
    controller states persist within it; proposed adds the fast step of Eq. 10 from synthetic
    gradients. maml: Finn et al.'s protocol; protonet: Snell et al.'s; mann: Santoro et al.'s.
    Every method trains until ``meta_iterations`` or its ``cpu_s`` budget, whichever comes first.
    """

    ways: int = 5  # N; the classifier has N outputs
    shots: int = 1  # K support images per class
    queries: int = 5  # Q query images per class (meta-training and test)
    settings: List[str] = field(default_factory=list)  # sweep: e.g. [5w1s, 20w5s]; empty: the one (ways, shots)
    methods: List[str] = field(default_factory=lambda: ["proposed", "baseline", "maml"])  # of FEWSHOT_METHODS (also mann, protonet)
    seeds: List[int] = field(default_factory=list)  # training seeds, one job '<setting>-<method>-s<seed>' each; empty: experiment.seed, job '<setting>-<method>'
    meta_lr: float = 1e-3  # Adam learning rate of every method's meta-weights (Finn et al. and Snell et al.: 1e-3)
    meta_batch: int = 4  # episodes per meta-update, for a method not in meta_batches
    meta_batches: Dict[str, int] = field(default_factory=dict)  # per-method episodes per meta-update (e.g. maml: 32)
    meta_iterations: int = 300  # cap on the meta-updates of every job
    # per-method meta-training budget in CPU seconds of the job's process (time.process_time: on a machine
    # shared with other work a wall-clock budget would depend on the load; wall time is reported too); absent: none
    cpu_s: Dict[str, float] = field(default_factory=dict)
    test_episodes: int = 1000  # held-out episodes for the accuracy and its 95% CI (the same episodes for every method and seed)
    val_every: int = 0  # meta-iterations between validation accuracies (0: no validation curve)
    val_episodes: int = 100  # held-out-character episodes per validation point (a stream disjoint from the test episodes)
    # MAML (Finn et al.): inner SGD steps and step size (theirs: 1 x 0.4 for 5-way, 5 x 0.1 for 20-way)
    adapt_steps: int = 1
    inner_lr: float = 0.4
    test_adapt_steps: int = -1  # MAML's inner steps at test time; -1: adapt_steps
    maml_order: int = 2  # 2: second-order MAML; 1: first order
    maml_order_20way: int = 1  # order used when ways >= 20 (first order allowed there)
    maml_train_queries: int = 1  # MAML's query images per class in its meta-training episodes (Finn et al.: 1)
    maml_conv_blocks: int = 4  # MAML's and the prototypical network's conv blocks (4 x 64 filters: 28x28 -> 64-d)
    protonet_train_ways: int = 20  # the prototypical network's meta-training episodes have max(this, N) ways
    # The NMN memory learner: a support item enters with its own one-hot label (own) or with the
    # previous item's (previous, MANN's offset); mann always uses previous (its authors' protocol)
    label_input: str = "own"
    mann_reads: int = 4  # MANN: read heads (Santoro et al.: 4)
    mann_controller: int = 200  # MANN: LSTM controller units (Santoro et al.: 200)
    mann_slots: int = 128  # MANN: memory slots (Santoro et al.: 128 x 40)
    mann_width: int = 40
    checkpoint_every: int = 25  # meta-iterations (and test episodes x 4) between job checkpoints
    log_every: int = 5  # meta-iterations between logged scalars


RARE_METHODS = ("proposed", "baseline")


@dataclass
class RareConfig:
    """MNIST rare-class ablation (Sec. 5.1): classes 0-4 always, a batch of classes 5-9 every ``period``."""

    period: int = 500  # rare iterations: period, 2 * period, ...
    rare_batch: int = 10  # images in a rare batch
    methods: List[str] = field(default_factory=lambda: ["proposed", "baseline"])
    test_every: int = 250  # iterations between rare-class test accuracies (and at every rare iteration + 1)
    test_images: int = 500  # unseen test images of classes 5-9 per test (0: all 4,861)
    test_context: int = 1  # labelled training images of each class 0-4 that precede the test queries in the sequence
    checkpoint_every: int = 250


@dataclass
class MetaTestConfig:
    """Sec. 4.2 / Fig. 4: pre-train on cyclists, adapt on a few pedestrians, track held-out MSE."""

    pretrain_iterations: int = 100  # on the cyclist training windows (Sec. 4.2: 100)
    adapt_iterations: int = 100  # steps on the adaptation set, held-out MSE after each
    adapt_examples: int = 10  # pedestrian windows to adapt on (Sec. 4.2: 10)
    eval_windows: int = 256  # held-out pedestrian windows for the MSE
    methods: List[str] = field(
        default_factory=lambda: ["proposed", "baseline", "maml2", "maml1", "supervised"]
    )  # proposed: NMN with sum mixing; baseline: NMN bp_only; maml2/maml1: MAML second/first order; supervised: LSTM enc-dec
    seq2seq_hidden: int = 30  # the supervised LSTM encoder-decoder (stand-in for [50]) and MAML's network
    maml_inner_lr: float = 0.05  # SGD step size of MAML's inner loop (stable with maml_offsets; README, "Trajectory MAML")
    maml_inner_steps: int = 1
    maml_tasks: int = 2  # tasks per meta-batch; a task = support + query sets of adapt_examples windows
    # zero: MAML's network starts with a zero output layer (predict "stay at the last observed position");
    # default: PyTorch's init, whose per-step displacements add up over 50 frames to an initial MSE ~35
    maml_decoder_init: str = "zero"
    # true: MAML's network predicts each future frame as an offset from the last observed one
    # (model/offset_seq2seq.py); false: the Seq2Seq's cumulative displacements, whose loss is so stiff
    # along the output layer that SGD diverges above a rate of ~2e-3 and Adam 1e-3 drifts (README)
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


def load_config(path: Optional[str | os.PathLike] = None, overrides: List[str] = ()) -> DictConfig:
    """Merge defaults, an optional YAML file and ``key=value`` overrides; validate the result."""
    schema = OmegaConf.structured(Config)
    layers: List[Any] = [schema]
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; pass a YAML file such as configs/local_small.yaml")
        try:
            layers.append(OmegaConf.load(p))
        except Exception as exc:  # yaml.YAMLError and friends
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"config file {p} is not valid YAML: {first}") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value; write e.g. model.slots=10")
    try:
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.merge(*layers)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {_one_line(exc)}") from None
    validate(cfg)
    return cfg


def _choice(cfg: DictConfig, key: str, choices: tuple) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in choices:
        raise ConfigError(f"config error: {key}: '{value}' is not one of {', '.join(choices)}")


def _positive(cfg: DictConfig, key: str, allow_zero: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value < 0 or (value == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ConfigError(f"config error: {key}: must be {bound}, got {value}")


def validate(cfg: DictConfig) -> None:
    """Range and choice checks that types alone cannot express."""
    _choice(cfg, "model.encoder", ENCODERS)
    _choice(cfg, "model.encoder_output", ENCODER_OUTPUTS)
    _choice(cfg, "model.addressing", ADDRESSING)
    _choice(cfg, "model.memory_init", MEMORY_INITS)
    if cfg.model.persist_memory and cfg.model.memory_init == "learned":
        raise ConfigError("config error: model.persist_memory: true needs model.memory_init=random "
                          "(a learned initial memory is where every batch starts)")
    _choice(cfg, "model.decoder", DECODERS)
    _choice(cfg, "model.output_activation", OUTPUT_ACTIVATIONS)
    _choice(cfg, "sg.kind", SG_KINDS)
    _choice(cfg, "sg.sharing", SHARING)
    _choice(cfg, "sg.transport", TRANSPORTS)
    _choice(cfg, "learner.mixing", MIXING_MODES)
    _choice(cfg, "learner.fast_update", FAST_UPDATES)
    _choice(cfg, "data.format", DATA_FORMATS)
    for key in (
        "model.input_dim", "model.encoder_hidden", "model.conv_channels", "model.conv_blocks",
        "model.image_size", "model.slots", "model.address_strength", "model.slot_width", "model.output_dim",
        "sg.hidden", "sg.lr", "sg.updates_per_push", "sg.checkpoint_every_pushes",
        "sg.coalesce_max",
        "learner.lr", "learner.fast_lr", "learner.batch_size", "data.obs_len", "data.pred_len",
        "data.frame_rate", "data.window_stride", "data.sdd_fps", "experiment.iterations",
        "experiment.eval_every", "experiment.eval_batches",
    ):
        _positive(cfg, key)
    for key in ("learner.grad_clip", "sg.max_staleness", "data.max_train_tracks", "sg.checkpoint_every_s",
                "sg.coalesce_wait_ms"):
        _positive(cfg, key, allow_zero=True)
    if not 0.0 <= cfg.learner.lam <= 1.0:
        raise ConfigError(f"config error: learner.lam: must be in [0, 1], got {cfg.learner.lam}")
    if not 0.0 < cfg.data.test_fraction < 1.0:
        raise ConfigError(f"config error: data.test_fraction: must be in (0, 1), got {cfg.data.test_fraction}")
    if not cfg.streams:
        raise ConfigError("config error: streams: at least one stream is needed, e.g. streams.cyclist.data_class=cyclist")
    for name, stream in cfg.streams.items():
        _positive(cfg, f"streams.{name}.schedule.every")
        _positive(cfg, f"streams.{name}.schedule.start", allow_zero=True)
        _positive(cfg, f"streams.{name}.schedule.batch_size", allow_zero=True)
    _validate_fewshot_rare(cfg)
    if not cfg.experiment.name or "/" in cfg.experiment.name:
        raise ConfigError(f"config error: experiment.name: '{cfg.experiment.name}' must be a non-empty name without '/'")


def parse_setting(setting: str) -> tuple:
    """'5w1s' -> (5, 1); raises ConfigError on anything else."""
    import re

    m = re.fullmatch(r"(\d+)w(\d+)s", str(setting))
    if not m or int(m.group(1)) < 2 or int(m.group(2)) < 1:
        raise ConfigError(f"config error: fewshot.settings: '{setting}' is not NwKs (e.g. 5w1s, 20w5s)")
    return int(m.group(1)), int(m.group(2))


def _validate_fewshot_rare(cfg: DictConfig) -> None:
    fs, rare = cfg.fewshot, cfg.rare
    for m in fs.methods:
        if m not in FEWSHOT_METHODS:
            raise ConfigError(f"config error: fewshot.methods: '{m}' is not one of {', '.join(FEWSHOT_METHODS)}")
    for m in rare.methods:
        if m not in RARE_METHODS:
            raise ConfigError(f"config error: rare.methods: '{m}' is not one of {', '.join(RARE_METHODS)}")
    for s in fs.settings:
        parse_setting(s)
    _choice(cfg, "fewshot.label_input", FEWSHOT_LABEL_INPUTS)
    _choice(cfg, "metatest.maml_decoder_init", ("zero", "default"))
    for key in ("fewshot.ways", "fewshot.shots", "fewshot.adapt_steps", "fewshot.inner_lr", "fewshot.meta_lr",
                "fewshot.meta_batch", "fewshot.checkpoint_every", "fewshot.log_every", "fewshot.val_episodes",
                "fewshot.maml_conv_blocks", "fewshot.maml_train_queries", "fewshot.protonet_train_ways", "fewshot.mann_reads",
                "fewshot.mann_controller", "fewshot.mann_slots", "fewshot.mann_width",
                "rare.period", "rare.rare_batch", "rare.test_every", "rare.checkpoint_every", "rare.test_context"):
        _positive(cfg, key)
    for key in ("fewshot.queries", "fewshot.meta_iterations", "fewshot.test_episodes", "fewshot.val_every",
                "rare.test_images"):
        _positive(cfg, key, allow_zero=True)
    for kind in ("meta_batches", "cpu_s"):
        for m, v in fs[kind].items():
            if m not in FEWSHOT_METHODS:
                raise ConfigError(f"config error: fewshot.{kind}: '{m}' is not one of {', '.join(FEWSHOT_METHODS)}")
            if not v > 0:
                raise ConfigError(f"config error: fewshot.{kind}.{m}: must be positive, got {v}")
    if len(set(fs.seeds)) != len(fs.seeds):
        raise ConfigError(f"config error: fewshot.seeds: {list(fs.seeds)} repeats a seed")
    if fs.ways < 2:
        raise ConfigError(f"config error: fewshot.ways: must be at least 2, got {fs.ways}")
    if fs.maml_order not in (1, 2) or fs.maml_order_20way not in (1, 2):
        raise ConfigError("config error: fewshot.maml_order: must be 1 or 2")
    if fs.test_adapt_steps < -1:
        raise ConfigError(f"config error: fewshot.test_adapt_steps: must be -1 or >= 0, got {fs.test_adapt_steps}")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def data_root(cfg: Optional[DictConfig] = None) -> Path:
    """``data.root``, else ``$SHAREDSG_DATA``, else ``../shared/data`` beside the repository."""
    if cfg is not None and cfg.data.root:
        return Path(cfg.data.root).expanduser()
    env = os.environ.get("SHAREDSG_DATA")
    if env:
        return Path(env).expanduser()
    return repo_root().parent / "shared" / "data"


def cache_dir(cfg: Optional[DictConfig] = None) -> Path:
    """``data.cache_dir``, else ``$SHAREDSG_CACHE``, else ``~/.cache/sharedsg``."""
    if cfg is not None and cfg.data.cache_dir:
        return Path(cfg.data.cache_dir).expanduser()
    env = os.environ.get("SHAREDSG_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sharedsg"
