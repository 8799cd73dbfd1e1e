"""The `emotau` command group and its entry point, :func:`main`.

User mistakes print one line, ``emotau: error: ...``, and exit with status 2; an endpoint
that stays down prints ``emotau: infrastructure error: ...`` and exits with status 3; a run
that leaves episodes as infrastructure errors exits with status 4 (``EXIT_INCOMPLETE``).
Each command lives in the module of its group; they import their heavy dependencies
only when they run, so that ``emotau --help`` stays fast.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from emotau.cli._analysis import analyze, compare
from emotau.cli._common import _fail, domain_names, names_help
from emotau.cli._launch import collect, status, submit
from emotau.cli._run import resume, run, shard_task, summary
from emotau.cli._serving import doctor, mock_server, serve_command
from emotau.cli._variants import variants


class _App(click.Group):
    """The command group; its help ends with the installed domains (listed only then)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(
                names_help("Domains (--domain)", domain_names(), "package.module:object", 76)
            )


@click.group(
    cls=_App,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    invoke_without_command=True,
    commands=[
        *(run, resume, summary, shard_task),  # _run
        *(submit, status, collect),  # _launch
        *(analyze, compare),  # _analysis
        variants,  # _variants
        *(doctor, mock_server, serve_command),  # _serving
    ],
)
@click.version_option(package_name="emotau", prog_name="emotau")
def cli() -> None:
    """Stress-test conversational agents with emotional simulated users.

    Quick start: `emotau run` (built-in hotel domain, scripted models, every variant),
    then `emotau summary runs/demo`.

    \b
    Exit status:
      0    done (run/resume: every episode of the grid or --shard finished)
      1    `status`: the run is not complete yet
      2    a mistake in the input, or an endpoint the preflight refuses (emotau: error: ...)
      3    an infrastructure failure outside any episode (emotau: infrastructure error: ...)
      4    run/resume: episodes missing after infrastructure errors (emotau resume RUN)
      5    a file or folder could not be written or read (full disk, read-only)
      130  interrupted by Ctrl-C; 143 by SIGTERM, 129 by SIGHUP (finished episodes are saved)
    """
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _stop_like_ctrl_c(received: list[int]) -> dict[int, Any]:
    """SIGTERM (what Slurm and Kubernetes send first) and SIGHUP stop emotau the way Ctrl-C
    does: the run stops starting episodes, finished ones stay saved. Their previous handlers,
    to restore. A signal that was ignored (nohup) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a background job: no Ctrl-C
            raise KeyboardInterrupt
        signal.raise_signal(signal.SIGINT)  # the exact path of Ctrl-C (asyncio's included)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            old[sig] = signal.signal(sig, handler)
    return old


def main(argv: list[str] | None = None) -> None:
    from emotau.core import InfraError, UserError

    received: list[int] = []
    previous = _stop_like_ctrl_c(received)
    try:
        rc = cli.main(args=argv, prog_name="emotau", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc))
    except InfraError as exc:  # an endpoint that stays down: say so, no traceback
        click.echo(f"emotau: infrastructure error: {exc}", err=True)
        sys.exit(3)
    except OSError as exc:  # a full disk, a read-only or immutable file: one line, the path
        from emotau.core import EXIT_FILE_ERROR

        where = f" {exc.filename}:" if exc.filename else ""
        click.echo(
            f"emotau: file error:{where} {exc.strerror or exc}; finished episodes are kept "
            "(free the space or fix the permissions, then run the same command again)",
            err=True,
        )
        sys.exit(EXIT_FILE_ERROR)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.Abort:
        if received:
            name = signal.Signals(received[0]).name
            click.echo(
                f"emotau: stopped by {name}; finished episodes are saved: the same command, or "
                "`emotau resume RUN_DIR`, runs the rest",
                err=True,
            )
            sys.exit(128 + received[0])
        click.echo("emotau: aborted", err=True)
        sys.exit(130)
    except SystemExit as exc:  # a command's own Ctrl-C stop (130): say which signal it was
        if received and exc.code == 130:
            click.echo(f"emotau: stopped by {signal.Signals(received[0]).name}", err=True)
            sys.exit(128 + received[0])
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.exit(rc if isinstance(rc, int) else 0)
