"""ComfyUI-VSSFlow: sound effects and lip-synced speech for silent video, as ComfyUI nodes.

ComfyUI imports this file from ``custom_nodes/`` and reads the two mappings and the web folder from it.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
