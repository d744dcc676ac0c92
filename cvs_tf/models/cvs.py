"""Re-export for older imports: ``CVSModel`` lives in its space module, cvs_tf/spaces/cvs.py."""

from cvs_tf.spaces.cvs import CVSModel

__all__ = ["CVSModel"]
