"""Hadamard Bench: what the project as a whole shares. `vocabulary` holds the words every layer
uses (torch-free, so the dashboard can import it); `plugins` loads third-party methods."""
