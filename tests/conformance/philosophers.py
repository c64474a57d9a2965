"""Dining philosophers with a footman.

Five philosophers, five forks, a footman who lets at most four sit at once.
A fork is picked up by writing to its `up` channel and put down by writing to
its `down` channel (each shared by its two neighbours).  The footman chooses
between `enter` and `leave` with an alternation.  Every philosopher eats MEALS
times, then retires its ends; forks and footman stop when all their users have
retired.  The program prints every process's totals.

Usage: python philosophers.py <backend>
"""
import importlib
import sys

csp = importlib.import_module("pycsp." + sys.argv[1])

N = 5
MEALS = 30


@csp.process
def philosopher(i, enter, leave, left_up, left_down, right_up, right_down, meals):
    eaten = 0
    for _ in range(meals):
        enter(i)                      # sit down (the footman allows it)
        left_up(i)
        right_up(i)
        eaten += 1                    # eat
        right_down(i)
        left_down(i)
        leave(i)                      # get up
    csp.retire(enter, leave, left_up, left_down, right_up, right_down)
    return "philosopher", i, eaten


@csp.process
def fork(j, up, down):
    uses = 0
    holders = set()
    try:
        while True:
            holder = up()
            if down() != holder:
                raise RuntimeError(f"fork {j}: put down by another philosopher")
            holders.add(holder)
            uses += 1
    except csp.ChannelRetireException:
        csp.retire(up, down)
    return "fork", j, uses, sorted(holders)


@csp.process
def footman(enter, leave, seats):
    seated = entries = most = 0
    try:
        while True:
            if seated < seats:
                guard, msg = csp.PriSelect(leave, enter)
            else:
                guard, msg = csp.PriSelect(leave)
            if guard is enter:
                seated += 1
                entries += 1
                most = max(most, seated)
            else:
                seated -= 1
    except csp.ChannelRetireException:
        csp.retire(enter, leave)
    return "footman", entries, seated, most <= seats


if __name__ == "__main__":
    enter, leave = csp.Channel("enter"), csp.Channel("leave")
    ups = [csp.Channel(f"up{j}") for j in range(N)]
    downs = [csp.Channel(f"down{j}") for j in range(N)]
    phils = [
        philosopher(i, -enter, -leave, -ups[i], -downs[i],
                    -ups[(i + 1) % N], -downs[(i + 1) % N], MEALS)
        for i in range(N)
    ]
    forks = [fork(j, +ups[j], +downs[j]) for j in range(N)]
    results = csp.Parallel(phils, forks, footman(+enter, +leave, N - 1))
    for r in results:                 # in the order given to Parallel
        print(*r)
