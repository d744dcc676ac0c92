"""Small library utilities shared by every layer: atomic writes and command-line plumbing."""
