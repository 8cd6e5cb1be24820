"""ComfyUI-VSSFlow: sound effects and lip-synced speech for silent video, as ComfyUI nodes.

ComfyUI imports this file from ``custom_nodes/`` as a package and reads the two mappings and the web folder from it.
"""

WEB_DIRECTORY = "./web"

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # imported bare (pytest collecting a checkout whose folder name is not a Python name): no package, no nodes
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
