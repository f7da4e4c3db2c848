"""sonic-rt's ComfyUI nodes. Install sonic-rt into ComfyUI's Python environment
(``pip install -e /path/to/sonic-rt``, torch 2.13.0 first), then copy or link this folder into
``ComfyUI/custom_nodes/``. The nodes themselves live in ``sonic_rt.comfyui``."""

from sonic_rt.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
