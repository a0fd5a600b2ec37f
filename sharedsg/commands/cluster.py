"""``sharedsg attach | status | stop``: streams joining a running experiment, and its state (the
parsers and the printing; the work is :mod:`sharedsg.runtime.cluster.ops`'s)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict

from sharedsg.runtime import NAMESPACE


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attach", help="register new streams with a running attachable experiment and train them")
    p.add_argument("stream_config", metavar="STREAM_CONFIG", help="YAML with a streams: section (and any overrides)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. experiment.iterations=50")
    p.add_argument("--experiment", required=True, help="name of the running experiment")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_attach)

    p = sub.add_parser("status", help="experiments running on a Ray cluster (streams, versions, pushes, queue) "
                                      "and sweep jobs (progress)")
    p.add_argument("--experiment", default=None, help="only this experiment")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS)")
    p.add_argument("--json", action="store_true", help="print the servers' state as JSON")
    p.set_defaults(func=_status)

    p = sub.add_parser("stop", help="checkpoint and stop an experiment's SG server (and its streams)")
    p.add_argument("--experiment", required=True, help="name of the experiment")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS)")
    p.set_defaults(func=_stop)


def _attach(args: argparse.Namespace) -> int:
    from sharedsg.runtime.cluster import ops

    print_json(ops.attach(args.experiment, args.stream_config, args.overrides, address=args.address))
    return 0


def _status(args: argparse.Namespace) -> int:
    from sharedsg.runtime.cluster import ops
    from sharedsg.runtime.sweep import format_jobs, job_states

    states = ops.status(args.experiment, address=args.address)
    sweeps = job_states() if args.experiment is None else {}  # Omniglot / MNIST jobs and their progress
    if args.json:
        print_json(dict(states, **({"sweeps": sweeps} if sweeps else {})))
    else:
        print("\n".join(t for t in (format_status(states), format_jobs(sweeps)) if t))
    return 0


def _stop(args: argparse.Namespace) -> int:
    from sharedsg.runtime.cluster import ops

    print_json(ops.stop(args.experiment, address=args.address))
    return 0


def format_status(states: Dict[str, Any]) -> str:
    if not states:
        return f"no experiments running in Ray namespace '{NAMESPACE}'"

    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}ms"

    lines = []
    for name, s in states.items():
        if "error" in s:
            lines.append(f"{name}: unreachable ({s['error']})")
            continue
        lines.append(f"{name}: run {s['run_path']}  transport={s['transport']} policy={s.get('policy', '?')}  "
                     f"pushes={s['pushes']} updates={s.get('updates', '?')} queue={s['queue']} "
                     f"duplicates={s.get('duplicates', 0)} lost={s['lost_pushes']} overflow={s.get('overflow', 0)} "
                     f"restarts={s['restarts']}")
        for g, info in sorted(s["groups"].items()):
            if "error" in info:
                lines.append(f"  group {g}: unreachable ({info['error']})  streams: {', '.join(info['streams']) or '-'}")
                continue
            lines.append(f"  group {g}: v{info['version']}  actor={info['actor']} node={info['node']} "
                         f"device={info['device']}  ingest={info['ingest_per_s']:.1f}/s "
                         f"updates={info['updates_per_s']:.1f}/s buffer={info['queued']}/{info['buffer_size']} "
                         f"pull p50/p99={ms(info['pull_p50_ms'])}/{ms(info['pull_p99_ms'])}  "
                         f"streams: {', '.join(info['streams']) or '-'}")
        for sn, st in sorted(s["streams"].items()):
            lines.append(f"  stream {sn}: group={st['group']} pushes={st['pushes']} last_seq={st['last_seq']} "
                         f"duplicates={st.get('duplicates', 0)} lost={st.get('lost', 0)} "
                         f"resumed_from_server={st.get('resumed_from_server', 0)} lag={st.get('lag', 0):.1f} "
                         f"node={st.get('node', '?')} device={st.get('device', '?')}")
    return "\n".join(lines)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))

