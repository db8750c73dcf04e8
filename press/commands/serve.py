"""`press serve [MODEL] [--host 127.0.0.1] [--port 7860] [--concurrency 1] [--queue-size 4]`: a local
web page to separate a recording.

Upload or record a mixture (or pick a built-in test mixture), choose a quality target, a fixed exit
or a compute budget, then listen to each separated speaker, see the exit every block took, every
exit's predicted exit-SNR bands and the compute spent against the last exit, and download the
sources and the JSON report. Needs the optional `web` extra (`pip install "press-sep[web]"`); runs
offline and listens on this machine only unless --host says otherwise (then it warns). It runs
--concurrency separations at once with --queue-size more waiting, and tells anyone beyond that the
server is busy. SIGTERM and Ctrl-C stop it and remove every file it wrote.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from press.commands.options import add_device_argument

if TYPE_CHECKING:
    from press.web.page import Capacity, Limits, WorkArea


def add_arguments(p: argparse.ArgumentParser) -> None:
    from press.web.page import (
        DEFAULT_BAND_SECONDS,
        DEFAULT_CONCURRENCY,
        DEFAULT_MAX_MEGABYTES,
        DEFAULT_MAX_SECONDS,
        DEFAULT_QUEUE_SIZE,
    )

    p.add_argument("model", nargs="?", default="default",
                   help="a shipped model's name or a .safetensors checkpoint (default: default)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_MEGABYTES,
                   help=f"largest upload in MB (default {DEFAULT_MAX_MEGABYTES:g})")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help=f"longest upload in seconds (default {DEFAULT_MAX_SECONDS:g})")
    p.add_argument("--band-seconds", type=float, default=DEFAULT_BAND_SECONDS,
                   help="files up to this long also get every exit's predicted exit-SNR bands, which cost about "
                        f"one more run to the last exit (default {DEFAULT_BAND_SECONDS:g}; 0: never)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                   help=f"separations run at once (default {DEFAULT_CONCURRENCY}: they share the model and the CPU)")
    p.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE,
                   help=f"requests that may wait for a separation; more are told the server is busy "
                        f"(default {DEFAULT_QUEUE_SIZE})")
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    from press.errors import PressError
    from press.web.page import Capacity, Limits, WorkArea

    if args.max_upload_mb <= 0 or args.max_seconds <= 0:
        raise PressError("--max-upload-mb and --max-seconds must be positive")
    if args.band_seconds < 0:
        raise PressError("--band-seconds must be 0 or more")
    if args.concurrency < 1 or args.queue_size < 1:
        raise PressError("--concurrency and --queue-size must be at least 1")
    limits = Limits(args.max_upload_mb, args.max_seconds, args.band_seconds)
    work = WorkArea()
    # Before Gradio is imported (some of it reads its folder then): everything the server writes,
    # Gradio's uploads included, goes under the work area, which goes when the server stops, by
    # Ctrl-C or SIGTERM too.
    os.environ["GRADIO_TEMP_DIR"] = str(work.cache)
    try:
        _serve(args, work, limits, Capacity(args.concurrency, args.queue_size))
    finally:
        work.close()
    return 0


def _serve(args: argparse.Namespace, work: WorkArea, limits: Limits, capacity: Capacity) -> None:
    """Load the model and serve the page until the process is stopped."""
    from press.errors import PressError
    from press.web.page import exposure_warning

    try:
        from press.web.app import serve
    except ImportError as err:
        raise PressError(f'press serve needs the web extra ({err}); install it with: pip install "press-sep[web]"') \
            from None
    from press.api import load
    from press.model import kernels

    warning = exposure_warning(args.host)
    if warning:
        print(f"press serve: warning: {warning}", file=sys.stderr)
    model = load(args.model, device=args.device)
    if next(model.model.parameters()).device.type == "cpu":
        # build or load the compiled kernels now, before the page takes a request, not inside the first one
        print(f"press serve: CPU kernels {'on' if kernels.available() else 'off (press kernels status says why)'}")
    print(f"press serve: {capacity.describe()}")
    address = f"[{args.host}]" if ":" in args.host else args.host      # an IPv6 address in a URL
    print(f"press serve: model {model.name} on http://{address}:{args.port} (Ctrl-C to stop)", flush=True)
    serve(model, work, args.host, args.port, limits, capacity)
