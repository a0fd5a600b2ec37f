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
SHARING = ("shared", "separate", "both")
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
    # shared: one group for all streams; separate: one group per stream; both: knowledge_sharing runs both arms
    sharing: str = "shared"
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
    # where every node writes events, checkpoints, figures and results.json: <storage>/<experiment>/<run>/;
    # a local or shared-filesystem path (a relative one is made absolute on the driver) or a URI
    # (s3://, gs://, file://; needs pyarrow). sharedsg/storage.py
    storage: str = "runs"
    run_dir: str = ""  # the former name of storage, still accepted; after loading it equals storage
    run_name: str = ""  # empty: a timestamp
    attachable: bool = False
    # Ray: streams scheduled in one iteration step one after another, in config order, each
    # waiting for its push (LocalBackend's order; with sg.transport=rpc the losses match --local)
    synchronous: bool = False
    progress: bool = True
    progress_every_s: float = 30.0  # seconds between the progress tables of a sweep's (or meta-test's) running jobs


@dataclass
class ResourcesConfig:
    """What a run reserves on Ray (sharedsg/runtime/placement.py: one placement group per run)."""

    # GPUs per stream actor, a string: "auto" (the streams share the GPUs there are: 1/k of a GPU each,
    # the smallest k that fits them all; none: CPU) or a number ("0", "0.25" packs four streams on a GPU, "1")
    gpus_per_stream: str = "auto"
    # auto: the GPUs the streams may share; -1: those of the nodes up now; N: N GPUs, which an
    # autoscaling cluster starts on request (its GPU workers may be 0 when the run starts)
    max_gpus: int = -1
    cpus_per_stream: float = 1.0
    server_cpus: float = 1.0  # CPUs reserved for each SG group of the server (runtime)
    server_gpus: float = 0.0  # GPUs for each SG group of the server (its SGLearner and rpc predictions)
    gpus_per_job: float = 0.0  # GPUs for each Omniglot / MNIST / meta-test job actor or task
    # seconds to wait for the run's placement group; then one line says what is missing (exit 2)
    placement_timeout_s: float = 120.0
    # a stream or job handed a GPU by Ray stops when this torch cannot use CUDA; false: compute on
    # the CPU (a Ray that declares GPUs it does not have, as in the tests)
    require_cuda: bool = True
    max_restarts: int = -1  # Ray restarts of a crashed server or stream actor (-1: unlimited)
    stream_checkpoint_every: int = 25  # steps between a stream actor's own checkpoints (0: never)
    object_store_mb: int = 200  # object store of the embedded Ray that `sharedsg run` starts without an address


FEWSHOT_METHODS = ("proposed", "baseline", "maml")
FEWSHOT_META = ("fomaml", "reptile")
FEWSHOT_QUERY_BN = ("batch", "running")
FEWSHOT_INNER_STEPS = ("sgd", "sign")


@dataclass
class FewShotConfig:
    """Omniglot N-way K-shot (Sec. 4.1) and the episode protocol (docs/classification.md).

    An episode's support images reach the NMN as one batch of one-step sequences; the NMN
    (reset to its meta-trained weights, learned initial memory included) takes ``adapt_steps``
    gradient steps on the support loss, the controllers with the mixed true + synthetic
    gradient of ``learner.mixing``; the adapted NMN then classifies the query images.
    """

    ways: int = 5  # N; the decoder has N outputs (model.output_dim is set to it)
    shots: int = 1  # K support images per class
    queries: int = 5  # Q query images per class (meta-training and test)
    settings: List[str] = field(default_factory=list)  # sweep: e.g. [5w1s, 20w5s]; empty: the one (ways, shots)
    methods: List[str] = field(default_factory=lambda: ["proposed", "baseline", "maml"])  # proposed | baseline | maml
    proposed_mixing: str = "sum"  # learner.mixing of 'proposed' (baseline is always bp_only)
    adapt_steps: int = 5  # inner gradient steps on the support set (meta-training and test)
    inner_lr: float = 0.5  # SGD step size of MAML's inner steps
    # The NMN's inner steps. sgd: p -= nmn_inner_lr * g. sign: p -= nmn_inner_lr * sign(g), the first
    # step of Adam; at initialisation the NMN's controller outputs vary little between images, so its
    # gradients are tiny and plain SGD barely moves it in a few steps (docs/classification.md).
    nmn_inner_step: str = "sign"
    nmn_inner_lr: float = 0.01
    meta: str = "fomaml"  # fomaml: query-loss gradient at the adapted weights; reptile: meta-weights toward the adapted ones
    meta_lr: float = 1e-3  # Adam learning rate of the meta-weights (the paper: 5e-6 over far more iterations)
    meta_batch: int = 4  # episodes per meta-update
    meta_iterations: int = 300  # meta-updates (the training budget, the same for every method)
    test_episodes: int = 1000  # held-out episodes for the accuracy and its 95% CI
    test_adapt_steps: int = -1  # -1: adapt_steps
    query_bn: str = "batch"  # batch: BN on the query batch statistics (as MAML); running: BN running stats
    maml_order: int = 2  # 2: second-order MAML; 1: first order
    maml_order_20way: int = 1  # order used when ways >= 20 (first order allowed there)
    checkpoint_every: int = 25  # meta-iterations (and test episodes x 4) between job checkpoints
    log_every: int = 5  # meta-iterations between logged scalars


RARE_METHODS = ("proposed", "baseline")


@dataclass
class RareConfig:
    """MNIST rare-class ablation (Sec. 5.1): classes 0-4 always, a batch of classes 5-9 every ``period``."""

    period: int = 500  # rare iterations: period, 2 * period, ...
    rare_batch: int = 10  # images in a rare batch
    methods: List[str] = field(default_factory=lambda: ["proposed", "baseline"])
    proposed_mixing: str = "sum"
    test_every: int = 250  # iterations between rare-class test accuracies (and at every rare iteration + 1)
    test_images: int = 500  # unseen test images of classes 5-9 per test (0: all 4,861)
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
    maml_inner_lr: float = 0.05  # SGD step size of MAML's inner loop
    maml_inner_steps: int = 1
    maml_tasks: int = 2  # tasks per meta-batch; a task = support + query sets of adapt_examples windows


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
    resolve_storage(cfg)
    validate(cfg)
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
    if cfg.sg.sharing == "both" and cfg.experiment.kind != "knowledge_sharing":
        raise ConfigError("config error: sg.sharing: 'both' runs the two arms of experiment.kind=knowledge_sharing; "
                          "pick shared or separate for this experiment")
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
    _validate_resources(cfg)
    if not cfg.experiment.name or "/" in cfg.experiment.name:
        raise ConfigError(f"config error: experiment.name: '{cfg.experiment.name}' must be a non-empty name without '/'")


def _validate_resources(cfg: DictConfig) -> None:
    r = cfg.resources
    text = str(r.gpus_per_stream).strip().lower()
    if text != "auto":
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0:  # also NaN
            raise ConfigError(f"config error: resources.gpus_per_stream: '{r.gpus_per_stream}' is not auto "
                              f"or a number of GPUs >= 0 (e.g. 0.25, 1)")
    _positive(cfg, "resources.cpus_per_stream")
    for key in ("resources.server_cpus", "resources.server_gpus", "resources.gpus_per_job",
                "resources.placement_timeout_s"):
        _positive(cfg, key, allow_zero=True)
    if r.max_gpus < -1:
        raise ConfigError(f"config error: resources.max_gpus: must be -1 (the GPUs there are) or >= 0, got {r.max_gpus}")


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
    _choice(cfg, "fewshot.meta", FEWSHOT_META)
    _choice(cfg, "fewshot.query_bn", FEWSHOT_QUERY_BN)
    _choice(cfg, "fewshot.nmn_inner_step", FEWSHOT_INNER_STEPS)
    _choice(cfg, "fewshot.proposed_mixing", MIXING_MODES[1:])
    _choice(cfg, "rare.proposed_mixing", MIXING_MODES[1:])
    for key in ("fewshot.ways", "fewshot.shots", "fewshot.adapt_steps", "fewshot.inner_lr", "fewshot.nmn_inner_lr", "fewshot.meta_lr",
                "fewshot.meta_batch", "fewshot.checkpoint_every", "fewshot.log_every",
                "rare.period", "rare.rare_batch", "rare.test_every", "rare.checkpoint_every"):
        _positive(cfg, key)
    for key in ("fewshot.queries", "fewshot.meta_iterations", "fewshot.test_episodes", "rare.test_images"):
        _positive(cfg, key, allow_zero=True)
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
