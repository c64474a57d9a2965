"""A producer and a consumer: one channel, retire at the end."""
from pycsp.threads import Channel, ChannelRetireException, Parallel, process, retire


@process
def producer(cout, n):
    for i in range(n):
        cout(i)
    retire(cout)


@process
def consumer(cin):
    total = 0
    try:
        while True:
            total += cin()
    except ChannelRetireException:
        return total


ch = Channel("numbers")
print(Parallel(producer(-ch, 1000), consumer(+ch)))
