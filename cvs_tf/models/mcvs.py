"""Re-export for older imports: ``MCVSModel`` lives in its space module, cvs_tf/spaces/mcvs.py."""

from cvs_tf.spaces.mcvs import MCVSModel

__all__ = ["MCVSModel"]
