"""losses of cvs_tf."""
