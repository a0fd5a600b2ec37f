"""``sharedsg attach | status | stop``: streams joining a running experiment, and its state."""

from __future__ import annotations

import argparse


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
    from sharedsg.runtime import job

    result = job.attach(args.experiment, args.stream_config, args.overrides, address=args.address)
    job.print_json(result)
    return 0


def _status(args: argparse.Namespace) -> int:
    from sharedsg.runtime import job

    from sharedsg.runtime.sweep import format_jobs, job_states

    states = job.status(args.experiment, address=args.address)
    sweeps = job_states() if args.experiment is None else {}  # Omniglot / MNIST jobs and their progress
    if args.json:
        job.print_json(dict(states, **({"sweeps": sweeps} if sweeps else {})))
    else:
        print("\n".join(t for t in (job.format_status(states), format_jobs(sweeps)) if t))
    return 0


def _stop(args: argparse.Namespace) -> int:
    from sharedsg.runtime import job

    job.print_json(job.stop(args.experiment, address=args.address))
    return 0
