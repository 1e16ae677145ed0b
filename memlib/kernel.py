"""The notebook kernel of ``memlib run``, with its own log held back and shown after the run.

The kernel process writes ipykernel's own log to its standard error (the notebook's output reaches the terminal
separately, through papermill).  When a run is interrupted or times out, papermill shuts the kernel down while it
is still answering, and ipykernel logs a 17-line ``ZMQError: Socket operation on non-socket`` traceback that would
land before memlib's one-line message.  :func:`held_kernel_log` starts the kernel with its standard error in a
temporary file; at the end of the run the log is written out without those shutdown tracebacks.
"""
from __future__ import annotations

import contextlib
import re
import sys
import tempfile
from typing import Iterator

_BLOCK_START = "Exception in message handler"
_ZMQ_END = re.compile(r"^zmq\.error\.\w+:")


def without_shutdown_tracebacks(log: str) -> str:
    """``log`` without ipykernel's "Exception in message handler" tracebacks that end in a ``zmq.error`` (the
    kernel's sockets closed under it while it was being shut down) and its "KeyboardInterrupt caught in kernel"
    line (papermill stopping it): neither says anything about the notebook."""
    out: list[str] = []
    block: list[str] = []
    for line in log.splitlines(keepends=True):
        if block:
            block.append(line)
            if _ZMQ_END.match(line):
                block = []  # a shutdown artifact: dropped
            elif not line.startswith((" ", "\t", "Traceback", "^")):  # the traceback ended in something else
                out += block
                block = []
        elif _BLOCK_START in line and "[IPKernelApp]" in line:
            block = [line]
        elif "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel" in line:
            continue  # papermill interrupting the kernel to stop it: memlib's own line says what happened
        else:
            out.append(line)
    return "".join(out + block)


@contextlib.contextmanager
def held_kernel_log() -> Iterator[dict]:
    """Keyword arguments for ``papermill.execute_notebook`` that start the kernel with its standard error in a
    temporary file; on leaving the block, the file is written to ``sys.stderr`` without shutdown tracebacks."""
    from jupyter_client.manager import AsyncKernelManager

    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:

        class Manager(AsyncKernelManager):
            stderr_log = log

            async def _async_launch_kernel(self, kernel_cmd, **kw):
                kw["stderr"] = self.stderr_log
                return await super()._async_launch_kernel(kernel_cmd, **kw)

        try:
            yield {"kernel_manager_class": Manager}
        finally:
            log.flush()
            log.seek(0)
            text = without_shutdown_tracebacks(log.read())
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
