"""Audio in and out: files, streaming readers and writers, atomic writes."""
