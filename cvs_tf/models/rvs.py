"""Re-export for older imports: ``RVSModel`` lives in its space module, cvs_tf/spaces/rvs.py."""

from cvs_tf.spaces.rvs import RVSModel

__all__ = ["RVSModel"]
