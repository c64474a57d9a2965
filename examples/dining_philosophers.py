"""The dining philosophers, with a footman.

Five philosophers sit round a table with a fork between each two.  To eat,
one sits down (the footman lets at most four sit at once, so nobody starves),
picks up both forks, whichever is free first, eats, puts them down and gets
up.  A fork is a process: picked up by a write to its `up` channel, put down
by a write to its `down` channel, by the same philosopher.  When everyone has
eaten MEALS times, the retirements end the forks and the footman.

    python examples/dining_philosophers.py [threads|processes|greenlets]
"""
from pycsp_import import *

PHILOSOPHERS = 5
MEALS = 20


@process
def philosopher(me: int, sit: ChannelEndWrite[int], stand: ChannelEndWrite[int], left_up: ChannelEndWrite[int],
                left_down: ChannelEndWrite[int], right_up: ChannelEndWrite[int], right_down: ChannelEndWrite[int],
                meals: int) -> int:
    for _ in range(meals):
        sit(me)
        first, _ = FairSelect((left_up, me), (right_up, me))
        (right_up if first is left_up else left_up)(me)
        # eating
        left_down(me)
        right_down(me)
        stand(me)
    retire(sit, stand, left_up, left_down, right_up, right_down)
    return meals


@process
def fork(up: ChannelEndRead[int], down: ChannelEndRead[int]) -> int:
    uses = 0
    try:
        while True:
            holder = up()
            if down() != holder:
                raise RuntimeError("a fork was put down by someone who did not hold it")
            uses += 1
    except ChannelRetireException:
        return uses


@process
def footman(sit: ChannelEndRead[int], stand: ChannelEndRead[int], seats: int) -> int:
    seated = most = 0
    try:
        while True:
            guards = [stand, sit] if seated < seats else [stand]
            guard, _ = PriSelect(*guards)
            seated += 1 if guard is sit else -1
            most = max(most, seated)
    except ChannelRetireException:
        return most


if __name__ == "__main__":
    n = PHILOSOPHERS
    sit, stand = Channel("sit"), Channel("stand")
    ups = [Channel(f"fork{i}.up") for i in range(n)]
    downs = [Channel(f"fork{i}.down") for i in range(n)]
    results = Parallel(
        [philosopher(i, -sit, -stand, -ups[i], -downs[i], -ups[(i + 1) % n],
                     -downs[(i + 1) % n], MEALS) for i in range(n)],
        [fork(+ups[i], +downs[i]) for i in range(n)],
        footman(+sit, +stand, n - 1),
    )
    meals, uses, most = results[:n], results[n:2 * n], results[-1]
    print(f"{n} dining philosophers on {BACKEND}")
    for i, count in enumerate(meals):
        print(f"philosopher {i} ate {count} times")
    for i, count in enumerate(uses):
        print(f"fork {i} was picked up {count} times")
    print(f"never more than {n - 1} seated at once: {'yes' if most <= n - 1 else 'NO'}")
