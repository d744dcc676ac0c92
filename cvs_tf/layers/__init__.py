"""layers of cvs_tf."""
