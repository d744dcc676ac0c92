"""Command-line front ends of cvs_tf (train, evaluate, data) and their shared error handling."""
