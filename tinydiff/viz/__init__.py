"""Figures and animations for the lessons and the CLI (matplotlib's Agg canvas, Pillow GIFs).

    figures.py        new_figure, save_figure, figure_to_array (no pyplot, no global backend)
    curves.py         plot_curves: named lines on one axes
    images.py         plot_image_grid, to_uint8
    distributions.py  plot_histogram against a reference density
    points.py         plot_points, plot_trajectories for 2-D data
    gif.py            write_gif from a list of frames
    guidance.py       classifier-free guidance: score fields, guided samples, the trade-off (lesson 07)
"""

from tinydiff.viz.curves import plot_curves
from tinydiff.viz.distributions import plot_histogram, standard_normal_pdf
from tinydiff.viz.figures import figure_to_array, new_figure, save_figure
from tinydiff.viz.gif import write_gif
from tinydiff.viz.images import plot_image_grid, to_uint8
from tinydiff.viz.points import plot_points, plot_trajectories

__all__ = ["figure_to_array", "new_figure", "plot_curves", "plot_histogram", "plot_image_grid", "plot_points",
           "plot_trajectories", "save_figure", "standard_normal_pdf", "to_uint8", "write_gif"]
