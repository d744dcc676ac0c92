"""models of cvs_tf."""
