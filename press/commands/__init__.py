"""Sub-commands of the `press` command line, one module each."""
