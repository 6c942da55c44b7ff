"""Running `openjukebox ARGS` from a test.

`run_cli` runs the command line in this process: argument parsing, the API call, the error handling and the exit
status are all the CLI's own code, without a new interpreter and torch import (seconds) for every call.
`run_cli_process` runs the installed entry point in a subprocess, for what only a real process shows (the
`python -m openjukebox` entry, environment variables read at start-up). `torchrun_command` is the command line of
two processes under torchrun.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass

import torch

from openjukebox.cli import main


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: object, cwd: str | os.PathLike | None = None) -> CliResult:
    """The exit status and output of `openjukebox ARGS`, run in this process with one CPU thread (the models in
    the tests are tiny, and on a busy machine spinning threads make a second of work take minutes)."""
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(), \
            contextlib.chdir(cwd or os.getcwd()):
        warnings.simplefilter("default")
        try:
            code = main(["--threads", "1", *map(str, args)])
        except SystemExit as e:  # argparse: usage errors (2), --help and --version (0)
            code = e.code if isinstance(e.code, int) else 1
        finally:
            torch.set_num_threads(threads)
    return CliResult(code, out.getvalue(), err.getvalue())


def run_cli_process(*args: object, cwd: str | os.PathLike | None = None, env: dict[str, str] | None = None,
                    timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "openjukebox", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def torchrun_command(*args: object) -> list[str]:
    """`torchrun --nproc_per_node 2 -m openjukebox ARGS` on a port free now, so that tests run side by side
    (`pytest -n`) never meet on one rendezvous port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
            "-m", "openjukebox", *map(str, args)]
