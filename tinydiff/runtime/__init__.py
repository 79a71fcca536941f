"""Process-level speed, out of the path a student reads; nothing in the teaching code needs it.

process_settings  what `import tinydiff` does to the process before NumPy loads (OpenBLAS's
                  idle threads, glibc's malloc), and why
parallel          DataParallel: a model run on slices of each batch in several processes
parallel_worker   the worker processes' half of DataParallel

The layers never import this package; it is handed in from above (see DESIGN.md).
"""
