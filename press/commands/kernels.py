"""`press kernels build [--force]` and `press kernels status`: PRESS's compiled CPU kernels.

`build` compiles them for this environment now (a deployment does it once, when it installs PRESS),
so that no process pays the ~20 s at its first forward pass; it exits with 1 when the build fails.
`status` says whether they are on here and why, the build key, the cache folder, and whether they
are built, failed (with the remembered error) or not built yet. See `press.model.kernels`.
"""

from __future__ import annotations

import argparse

ERROR_LINES = 12   # of a remembered build error, in `status`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kernels_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build (or load) the kernels for this environment now")
    build.add_argument("--force", action="store_true", help="try again after a remembered failed build")
    sub.add_parser("status", help="on or off and why, build key, cache folder, built / failed / not built")


def run(args: argparse.Namespace) -> int:
    import warnings

    from press.model import kernels

    on, _ = kernels.enabled()
    if args.kernels_command == "status" or not on:
        print("\n".join(status_lines()))
        return 0
    with warnings.catch_warnings():   # the status below says what a warning would
        warnings.simplefilter("ignore", RuntimeWarning)
        ok = kernels.build(force=args.force)
    print("\n".join(status_lines()))
    return 0 if ok else 1


def status_lines() -> list[str]:
    """What `press kernels status` prints, one line each."""
    from press.model import kernels

    on, reason = kernels.enabled()
    build = kernels.current_build()
    state = build.state()
    lines = [f"CPU kernels:  {'enabled' if on else 'disabled'} ({reason})",
             f"build key:    {build.key}",
             f"compiler:     {kernels.compiler_version()}",
             f"cache folder: {build.folder}",
             f"state:        {state}" + (" (`press kernels build --force` tries again)" if state == "failed" else "")]
    error = build.error()
    if error is not None:
        lines.append(f"error (first lines of {build.failure}):")
        lines += [f"  {line[:300]}" for line in error.strip().splitlines()[:ERROR_LINES]]
    return lines
