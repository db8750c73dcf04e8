"""The `press serve` page in Gradio, run offline: no analytics or version check, no share link,
no server-side rendering (no Node), system fonts instead of web fonts.

`build(model, limits, work)` lays out the page over press.web.page's functions; `start(...)`
launches it on a local address and returns, `serve(...)` also waits until the process is stopped
and then removes everything the server wrote. Separations run `Capacity.concurrency` at a time
(the model is CPU-bound and shared) with at most `Capacity.queue_size` waiting; each request
writes into its own folder, and Gradio's uploads and served copies go to the server's own
temporary folder (press.web.page.WorkArea).
"""

from __future__ import annotations

import os
import sys
import time

# Before Gradio is imported: it reads these at import time.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from press.errors import PressError  # noqa: E402
from press.web.page import (  # noqa: E402
    CHANNEL_CHOICES,
    MODES,
    Capacity,
    Limits,
    WorkArea,
    builtin_labels,
    separate,
    write_builtin,
)

# Gradio caches the files it serves (uploads, results): every 10 minutes, delete those older than
# an hour; Gradio deletes the whole cache when the server stops.
CACHE_CLEANUP = (600, 3600)

INTRO = """# PRESS: separate a recording, listen to each speaker, see where the network stopped
Upload or record a mixture of two speakers (or pick a built-in test mixture), choose how the
network decides when to stop, and run. Each segment leaves at the first exit whose predicted
quality reaches the target with the confidence asked; easy audio stops early and costs less.
Everything runs on this machine. The target and confidence start at the model's recommended
operating point (its card says what it saves there); targets above what its outputs reach send
every segment to the last exit."""


def _theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: nothing is fetched from a font CDN."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def _refusal(message: str) -> gr.Error:
    """A bad request's message for the page, without a traceback in the server's log: the request
    was at fault, not the server."""
    return gr.Error(message, print_exception=False)


def build(model, limits: Limits, work: WorkArea) -> gr.Blocks:
    """The page for `model` (a press.api.Press)."""
    n_exits, n_src = model.n_exits, model.n_src
    noisy = "speech" in model.source_names  # an enhancer: outputs named speech and noise, noisy examples

    with gr.Blocks(title="PRESS separation", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as page:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                audio = gr.Audio(label="mixture: upload or record", sources=["upload", "microphone"],
                                 type="filepath", format=None, buttons=["download"], elem_id="press-input")
                builtin = gr.Dropdown(choices=builtin_labels(noisy), value=None, label="or a built-in test mixture",
                                      elem_id="press-builtin")
                gr.Markdown(f"Files up to {limits.max_megabytes:g} MB and {limits.max_seconds:g} s.")
            with gr.Column(scale=2):
                mode = gr.Radio(list(MODES), value=MODES[0], label="how to choose the exit", elem_id="press-mode")
                point = model.operating_point
                target = gr.Slider(-5, 30, value=point.target_db, step=0.5, label="target exit-SNR (dB)")
                confidence = gr.Slider(0.05, 0.99, value=point.confidence, step=0.01, label="confidence")
                exit_ = gr.Slider(1, n_exits, value=n_exits, step=1, label="fixed exit", visible=False)
                budget = gr.Number(value=1.1, label="compute budget (GMAC/s; calibrated on first use)",
                                   visible=False)
                channel = gr.Dropdown(choices=CHANNEL_CHOICES, value="ask", label="channel (multi-channel files)")
                run = gr.Button("Separate", variant="primary", elem_id="press-run")
        summary = gr.Markdown(elem_id="press-summary")
        with gr.Row():
            mixture_out = gr.Audio(label="mixture (as separated)", type="filepath", interactive=False,
                                   buttons=["download"], elem_id="press-mixture")
            speakers = [gr.Audio(label=model.source_names[j] if noisy else f"speaker {j + 1}", type="filepath",
                                 interactive=False, buttons=["download"], elem_id=f"press-speaker-{j + 1}")
                        for j in range(n_src)]
        # No share buttons (they post to Hugging Face); the figures carry their own titles.
        exit_map = gr.Image(label="exit taken per block", show_label=False, type="filepath", interactive=False,
                            buttons=["download", "fullscreen"], elem_id="press-exit-map")
        bands_plot = gr.Image(label="predicted exit-SNR bands per exit", show_label=False, type="filepath",
                              interactive=False, buttons=["download", "fullscreen"], elem_id="press-bands")
        files = gr.File(label="download: separated sources and JSON report", file_count="multiple",
                        interactive=False, elem_id="press-files")

        def show_fields(choice: str):
            return (gr.update(visible=choice == MODES[0]), gr.update(visible=choice == MODES[0]),
                    gr.update(visible=choice == MODES[1]), gr.update(visible=choice == MODES[2]))

        def pick_builtin(label: str | None, request: gr.Request):
            if not label:
                return gr.update()
            try:
                with work.request(request.session_hash) as folder:
                    return str(write_builtin(label, model.sample_rate, folder, noisy))
            except PressError as err:
                raise _refusal(str(err)) from None

        def separate_audio(path, mode_, target_, confidence_, exit_value, budget_, channel_,
                           request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            if not path:
                raise _refusal("no audio given: upload or record a mixture, or pick a built-in test mixture")

            def step(fraction: float, text: str) -> None:     # between steps: is the server stopping?
                work.check()
                progress(fraction, desc=text)

            try:
                with work.request(request.session_hash) as folder:
                    out = separate(model, path, folder, limits, mode=mode_, target_db=target_,
                                   confidence=confidence_, exit=exit_value, budget=budget_, channel=channel_,
                                   progress=step)
            except PressError as err:
                raise _refusal(str(err)) from None
            return (out.summary, str(out.mixture), *[str(p) for p in out.sources], str(out.exit_map),
                    str(out.bands_plot), [str(p) for p in [*out.sources, out.report_path]])

        # Outside the queue: these take milliseconds, and the page stays usable while it is full.
        mode.change(show_fields, mode, [target, confidence, exit_, budget], queue=False)
        builtin.change(pick_builtin, builtin, audio, queue=False)
        run.click(separate_audio, [audio, mode, target, confidence, exit_, budget, channel],
                  [summary, mixture_out, *speakers, exit_map, bands_plot, files], api_name="separate")

        def end_session(request: gr.Request) -> None:
            work.end(request.session_hash)

        page.unload(end_session)
    return page


def start(model, work: WorkArea, host: str = "127.0.0.1", port: int = 7860, limits: Limits = Limits(),
          capacity: Capacity = Capacity()) -> gr.Blocks:
    """Launch the page on http://host:port, writing under `work`, and return at once; the caller
    closes the page, then the work area."""
    # Gradio reads its folder when the page is built and whenever it stores or serves a file
    os.environ["GRADIO_TEMP_DIR"] = str(work.cache)
    page = build(model, limits, work)
    page.queue(default_concurrency_limit=capacity.concurrency, max_size=capacity.queue_size)
    # quiet: press serve prints the address itself, and Gradio's hint about share links does not
    # apply (share=False: there is no public link)
    page.launch(server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False,
                max_file_size=int(limits.max_megabytes * 1e6), theme=_theme(), quiet=True,
                show_error=True, prevent_thread_lock=True)
    return page


def serve(model, work: WorkArea, host: str = "127.0.0.1", port: int = 7860, limits: Limits = Limits(),
          capacity: Capacity = Capacity()) -> None:
    """Serve the page until the process is interrupted (Ctrl-C, or SIGTERM under
    press.commands.signals.stop_cleanly), then stop it; the caller removes the work area.

    Gradio's own wait swallows the interrupt (and prints a line); this one lets it propagate, so
    the command exits with the signal's status. A separation still running is stopped at its next
    step first (see WorkArea); a second signal ends the process at once."""
    page = start(model, work, host, port, limits, capacity)
    try:
        while page.is_running:
            time.sleep(0.2)
    finally:
        if work.stop():
            print("press serve: stopping the running separation at its next step (again to end at once)",
                  file=sys.stderr, flush=True)
        work.wait_idle()
        page.close(verbose=False)
