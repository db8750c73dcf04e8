"""The corpus renderer: builds PRESS's corpora from Debian packages and TTS engines.

`press data synth` renders the built-in 8 kHz speech corpus (the shipped one, or the full training
corpus with `--full`) from recorded prompts and TTS engines (`synth`, with its voices in `voices` and
`world_voices`, texts in `text` and WORLD voice transformation in `transform`); `press data noisy`
renders the recorded-noise enhancement corpus at 16 kHz (`noisy_render`, from the catalogues
`noise_catalogue` and `wideband_catalogue`, read out of packages by `debian`). Every utterance goes
through one conditioning chain (`conditioning`).

Rendering needs the Debian packages, engines and the `render` extra; training does not. The loaders
that read rendered corpora for training and evaluation live in press.data, which imports nothing from
here; this package may import press.data (the manifest format), press.io and press.errors.
"""
