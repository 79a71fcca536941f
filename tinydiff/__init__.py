"""tinydiff: diffusion models from scratch in NumPy and Numba, made to teach.

Layers carry hand-written backward passes (tinydiff.nn), hot loops are Numba kernels held
to plain NumPy references (tinydiff.kernels), and the diffusion math mirrors diffusers'
schedulers (tinydiff.diffusion).
"""

__version__ = "0.1.0"
