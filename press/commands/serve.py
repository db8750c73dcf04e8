"""`press serve [MODEL] [--host 127.0.0.1] [--port 7860]`: a local web page to separate a recording.

Upload or record a mixture (or pick a built-in test mixture), choose a quality target, a fixed exit
or a compute budget, then listen to each separated speaker, see the exit every block took, every
exit's predicted exit-SNR bands and the compute spent against the last exit, and download the
sources and the JSON report. Needs the optional `web` extra (`pip install "press-sep[web]"`); runs
offline and listens on this machine only unless --host says otherwise.
"""

from __future__ import annotations

import argparse

from press.commands.options import add_device_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    from press.web.page import DEFAULT_BAND_SECONDS, DEFAULT_MAX_MEGABYTES, DEFAULT_MAX_SECONDS

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
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    from press.errors import PressError
    from press.web.page import Limits

    if args.max_upload_mb <= 0 or args.max_seconds <= 0:
        raise PressError("--max-upload-mb and --max-seconds must be positive")
    if args.band_seconds < 0:
        raise PressError("--band-seconds must be 0 or more")
    try:
        from press.web.app import serve
    except ImportError as err:
        raise PressError(f'press serve needs the web extra ({err}); install it with: pip install "press-sep[web]"') \
            from None
    from press.api import load
    from press.model import kernels

    model = load(args.model, device=args.device)
    if next(model.model.parameters()).device.type == "cpu":
        # build or load the compiled kernels now, before the page takes a request, not inside the first one
        print(f"press serve: CPU kernels {'on' if kernels.available() else 'off (press kernels status says why)'}")
    print(f"press serve: model {model.name} on http://{args.host}:{args.port} (Ctrl-C to stop)")
    serve(model, args.host, args.port, Limits(args.max_upload_mb, args.max_seconds, args.band_seconds))
    return 0
