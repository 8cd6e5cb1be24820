"""ComfyUI-VSSFlow: sound effects and lip-synced speech for silent video, as ComfyUI nodes.

ComfyUI imports this file from ``custom_nodes/`` as a package and reads ``comfy_entrypoint`` (the V3 node API) and
the web folder from it. It must not export ``NODE_CLASS_MAPPINGS``: ComfyUI's loader takes that first and then never
calls the entry point.
"""

WEB_DIRECTORY = "./web"

if __package__:
    from .nodes import comfy_entrypoint
    __all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
else:  # imported bare (pytest collecting a checkout whose folder name is not a Python name): no package, no nodes
    __all__ = ["WEB_DIRECTORY"]
