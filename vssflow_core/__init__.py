"""VSSFlow in pure PyTorch: video (and an optional transcript) in, sound and speech out.

No ComfyUI imports live here; the node pack in ``nodes/`` wraps this library.
"""

__version__ = "0.1.0"
