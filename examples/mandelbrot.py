"""A Mandelbrot farm: workers compute the rows of a picture with numpy.

The producer hands out row numbers; WORKERS workers each compute a whole row
at once with numpy (how many steps each point takes to escape) and send the
row back, as a numpy array (under pycsp.processes it travels through shared
memory); the collector puts the picture together and it is printed as text.

    python examples/mandelbrot.py [threads|processes|greenlets]
"""
import math

import numpy as np
import numpy.typing as npt

from pycsp_import import *

WIDTH, HEIGHT = 72, 28
MAX_STEPS = 60
X0, X1 = -2.2, 0.8          # the real axis, left to right
Y0, Y1 = 1.2, -1.2          # the imaginary axis, top to bottom
WORKERS = 4
SHADES = " .:-=+*%#"        # by escape step, fast to slow; "@" never escapes


# One row's escape steps (a picture is rows of them).
Steps = npt.NDArray[np.int_]


def escape_steps(row: int) -> Steps:
    """For each point of ``row``: the step at which it escaped (|z| > 2), or
    MAX_STEPS if it never did (it is in the set)."""
    ci = Y0 + row * ((Y1 - Y0) / (HEIGHT - 1))
    cr = X0 + np.arange(WIDTH) * ((X1 - X0) / (WIDTH - 1))
    zr, zi = np.zeros(WIDTH), np.zeros(WIDTH)
    steps = np.full(WIDTH, MAX_STEPS)
    running = np.ones(WIDTH, dtype=bool)
    for step in range(MAX_STEPS):
        zr2, zi2 = zr * zr, zi * zi
        escaped = running & (zr2 + zi2 > 4.0)
        steps[escaped] = step
        running &= ~escaped
        # Escaped points stop at 0 rather than grow without bound (overflow).
        zi = np.where(running, 2.0 * zr * zi + ci, 0.0)
        zr = np.where(running, zr2 - zi2 + cr, 0.0)
    return steps


@process
def producer(jobs: ChannelEndWrite[int], rows: int) -> None:
    for row in range(rows):
        jobs(row)
    retire(jobs)


@process
def worker(jobs: ChannelEndRead[int], results: ChannelEndWrite[tuple[int, Steps]]) -> None:
    while True:
        row = jobs()
        results((row, escape_steps(row)))


@process
def collector(results: ChannelEndRead[tuple[int, Steps]]) -> Steps:
    picture = np.zeros((HEIGHT, WIDTH), dtype=int)
    try:
        while True:
            row, steps = results()
            picture[row] = steps
    except ChannelRetireException:
        return picture


def shade(steps: int) -> str:
    """The character for a point: on a square-root scale of its escape step,
    which spreads the many points that escape early over more shades."""
    if steps == MAX_STEPS:
        return "@"
    return SHADES[math.isqrt(steps * len(SHADES) ** 2 // MAX_STEPS)]


if __name__ == "__main__":
    jobs, results = Channel("rows"), Channel("results")
    *_, picture = Parallel(
        producer(-jobs, HEIGHT),
        WORKERS * worker(+jobs, -results),
        collector(+results),
    )
    for row in picture:
        print("".join(shade(steps) for steps in row).rstrip())
    print(f"{WIDTH} x {HEIGHT} points, at most {MAX_STEPS} steps each, "
          f"rows computed by {WORKERS} workers on {BACKEND}")
    print(f"{int((picture == MAX_STEPS).sum())} points in the set")
