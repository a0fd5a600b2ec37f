"""The ``sharedsg`` parser: every command and benchmark is there, and building it loads neither
torch nor ray (so ``--help``, ``status``, ``stop`` and ``data`` start in a fraction of a second)."""

import subprocess
import sys

import pytest

from sharedsg.commands.bench import BENCHES
from sharedsg.cli import build_parser


def test_the_parser_imports_neither_torch_nor_ray():
    code = ("import sys; from sharedsg.cli import build_parser; build_parser().parse_args(['bench', 'learner']); "
            "print(sorted(m for m in ('torch', 'ray', 'tensorboard', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("bench", sorted(BENCHES))
def test_every_benchmark_parses_its_options_and_names_its_runner(bench):
    args = build_parser().parse_args(["bench", bench, "--json"])
    assert args.json and callable(args.func)


def test_a_bad_benchmark_option_is_argparse_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["bench", "learner", "--rounds", "0"])
    assert exc.value.code == 2
    assert "argument --rounds: 0 is out of range: must be at least 1" in capsys.readouterr().err


def test_a_missing_command_module_fails_loudly(monkeypatch):
    from sharedsg import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ("sharedsg.commands.gone",))
    with pytest.raises(ModuleNotFoundError, match="sharedsg.commands.gone"):
        build_parser()
