"""`press serve`: a local web page to separate a recording, listen to each speaker and see which
exit every block took (the optional `web` extra: `pip install "press-sep[web]"`).

`press.web.page` holds the page's work as plain functions (limits, per-request folders, built-in
mixtures, one separation with its figures and report), tested without a browser;
`press.web.app` lays them out as a Gradio page that runs offline (no analytics, no share link,
no web fonts). Only `press.web.app` imports Gradio.
"""
