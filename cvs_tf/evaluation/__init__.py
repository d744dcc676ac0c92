"""evaluation of cvs_tf."""
