"""tinydiff: diffusion models from scratch in NumPy and Numba, made to teach.

Layers carry hand-written backward passes (tinydiff.nn), hot loops are Numba kernels held
to plain NumPy references (tinydiff.kernels), and the diffusion math mirrors diffusers'
schedulers (tinydiff.diffusion).
"""

from tinydiff.runtime import process_settings

__version__ = "0.1.0"

process_settings.apply()  # speed settings that must precede NumPy: tinydiff/runtime/process_settings.py
