/* net_commit.pml - the commit protocol of channels across hosts (issue #16,
 * ../shared/NET.md "Shape"), for spin.  A design model: it comes before the
 * code, and the code is to follow it step for step.
 *
 * The protocol:
 *   - A channel lives on its home node; the home's agent keeps its offers.
 *   - A CSP process (on some node) that reads, writes or alternates makes its
 *     record WAITING with a new epoch, then sends one OFFER per guard to each
 *     guard's home.  Its record, kept by its own node's agent, is the commit
 *     point: WAITING -> CLAIMED(by one channel's home) -> DONE.
 *   - A home that holds a reader's and a writer's offer on one channel starts
 *     one matcher for that channel (at most one in flight per channel).  The
 *     matcher CLAIMs the two parties one after the other, the lower process
 *     number first (a global order: node, then pid), each through the party's
 *     own agent.  No lock is held across the network.
 *   - An agent answers a CLAIM at once: OK if the record is WAITING in that
 *     epoch (it becomes CLAIMED by that channel), FAIL if the epoch is stale
 *     or the record is DONE.  A record CLAIMED by another matcher queues the
 *     claim until that matcher RELEASEs it (then the next queued claim is
 *     served) or FINISHes it (then every queued claim FAILs).
 *   - A matcher whose first claim FAILs drops that offer; whose second claim
 *     FAILs drops that offer and RELEASEs the first party; with both claimed it
 *     hands the writer's value to the reader: FINISH to both.  Then it looks
 *     for another pair on its channel.
 *   - A process whose record is DONE sends WITHDRAW for the offers of its
 *     other guards; a home drops an offer only if the epoch matches.
 *
 * Why no cycle of waiting matchers: a matcher that waits holds at most one
 * claim, of a lower-numbered process than the one it waits for, so a chain of
 * waits climbs the order and ends.  Why nothing is missed: a claim fails only
 * on a record that is DONE or in a later epoch, whose offer is dead anyway.
 *
 * What is modelled: nodes' agents (one inbox each, FIFO: ZeroMQ keeps order per
 * link, and one inbox merges the links in any order), records, offers, claims
 * and their queues, matchers, withdrawal, epochs (processes that do several
 * operations in turn).  Abstracted: the transport's framing and security,
 * messages' bytes (a value is a number), poison and retire, buffered
 * channels, deadlines, node death (next: a dead node's claims and the channels
 * homed there), and which pair a home picks when several could match (any:
 * FIFO order is one of the choices explored).
 *
 * Checked (models/check_net.sh): no assertion fails, no invalid end state (a
 * matcher or agent wedged), and at quiescence (Promela's timeout): no record
 * left CLAIMED; no channel holding a live reader offer and a live writer offer
 * (a match missed); every reader that finished got the value of the writer
 * that finished with it, on the same channel; each scenario's expected count
 * of finished operations; every offer of a waiting operation still at its
 * home (none lost).  A record is finished at most once per epoch (the
 * assertions in FINISH), and each write's value reaches at most one reader,
 * exactly when its writer finished that operation.
 *
 * Seeded mutations (models/check_net.sh --self-test), each must be caught:
 *   MUT_NO_ORDER      claims taken reader first, not in process order
 *   MUT_NO_EPOCH      a claim from an earlier operation taken by a later one
 *   MUT_FAIL_CLAIMED  a claim on a record another matcher holds fails at once
 *   MUT_NO_RELEASE    a matcher whose second claim failed keeps the first
 */

#ifndef SCEN
#define SCEN 1
#endif

#define NN 3          /* nodes */
#define NP 3          /* CSP processes */
#define NC 3          /* channels */
#define NG 2          /* guards per operation at most */

#define RD 0
#define WR 1

#define IDLE 0
#define WAITING 1
#define CLAIMED 2
#define DONE 3

mtype = { OFFER, WITHDRAW, CLAIM, RELEASE, FINISH, OK, FAIL };

/* The network: one inbox per node (kind, process, channel, epoch, dir, value). */
chan inbox[NN] = [10] of { mtype, byte, byte, byte, bit, byte };
/* A matcher's answers: one matcher per channel, one claim outstanding. */
chan answer[NC] = [1] of { mtype };

/* Placement (set by init). */
byte node_of[NP];
byte home_of[NC];
byte nops[NP];
byte ng[NP];
byte gch[NP * NG];
bit gdir[NP * NG];

/* Records: kept by the agent of node_of[p]. */
byte status[NP];
byte epoch[NP];
byte claimer[NP];            /* channel + 1 of the matcher that claimed it */
byte chosen[NP];             /* channel + 1 of the last finished operation */
byte got[NP];                /* value the last finished read got */
chan queued[NP] = [NC] of { byte, byte };   /* claims waiting: channel, epoch */

/* Offers: kept by the agent of home_of[x]; epoch 0 = none. */
byte oe[NC * NP];
bit odir[NC * NP];
byte ov[NC * NP];
bit busy[NC];

/* Ghosts, for the checks.  A write's value names its writer and epoch
 * (VALUE), so a delivered value says which write operation it came from. */
#define VALUE(p, e) ((p) * 8 + (e))
#define NV (NP * 8)
bit delivered[NV];           /* the value reached a reader that finished */
bit written[NV];             /* its writer finished that operation */
byte partner[NP];            /* process + 1 with whom p last finished */
byte finished;               /* operations finished, all processes */

#define OFF(x, p) ((x) * NP + (p))
#define LIVE(x, p) (oe[OFF(x, p)] != 0 && oe[OFF(x, p)] == epoch[p] && status[p] == WAITING)
#define PAIR(x, r, w) (oe[OFF(x, r)] != 0 && odir[OFF(x, r)] == RD && \
                       oe[OFF(x, w)] != 0 && odir[OFF(x, w)] == WR)

/* At the home of x, with its state in hand (atomic): start a matcher if none
 * runs for x and a reader's and a writer's offer are there (any such pair). */
inline try_start(x)
{
    if
    :: busy[x] -> skip
    :: else ->
        if
        :: PAIR(x, 0, 1) -> busy[x] = 1; run Matcher(x, 0, 1)
        :: PAIR(x, 1, 0) -> busy[x] = 1; run Matcher(x, 1, 0)
        :: PAIR(x, 0, 2) -> busy[x] = 1; run Matcher(x, 0, 2)
        :: PAIR(x, 2, 0) -> busy[x] = 1; run Matcher(x, 2, 0)
        :: PAIR(x, 1, 2) -> busy[x] = 1; run Matcher(x, 1, 2)
        :: PAIR(x, 2, 1) -> busy[x] = 1; run Matcher(x, 2, 1)
        :: else -> skip
        fi
    fi
}

inline drop(x, p, e)
{
    if
    :: oe[OFF(x, p)] == e -> oe[OFF(x, p)] = 0
    :: else -> skip
    fi
}

/* At p's agent: a claim by the matcher of channel x for epoch e. */
inline claim(p, x, e)
{
    if
#ifdef MUT_NO_EPOCH
    :: status[p] == DONE -> answer[x]!FAIL
#else
    :: e != epoch[p] || status[p] == DONE -> answer[x]!FAIL
#endif
    :: else ->
        assert(status[p] != IDLE);
        if
        :: status[p] == WAITING -> status[p] = CLAIMED; claimer[p] = x + 1; answer[x]!OK
#ifdef MUT_FAIL_CLAIMED
        :: status[p] == CLAIMED -> answer[x]!FAIL
#else
        :: status[p] == CLAIMED -> assert(claimer[p] != x + 1); queued[p]!x, e
#endif
        fi
    fi
}

proctype Matcher(byte x; byte r; byte w)
{
    byte a, b, ea, eb, val;
    mtype ans;
    atomic {
#ifdef MUT_NO_ORDER
        a = r; b = w;     /* reader first, whatever their numbers */
#else
        if
        :: r < w -> a = r; b = w
        :: else -> a = w; b = r
        fi;
#endif
        ea = oe[OFF(x, a)];
        eb = oe[OFF(x, b)];
        val = ov[OFF(x, w)]
    }
    inbox[node_of[a]]!CLAIM, a, x, ea, 0, 0;
    answer[x]?ans;
    if
    :: ans == FAIL -> atomic { drop(x, a, ea) }; goto out
    :: else -> skip
    fi;
    inbox[node_of[b]]!CLAIM, b, x, eb, 0, 0;
    answer[x]?ans;
    if
    :: ans == FAIL ->
        atomic { drop(x, b, eb) };
#ifndef MUT_NO_RELEASE
        inbox[node_of[a]]!RELEASE, a, x, ea, 0, 0;
#endif
        goto out
    :: else -> skip
    fi;
    atomic {
        drop(x, a, ea);
        drop(x, b, eb);
        partner[r] = w + 1;
        partner[w] = r + 1
    }
    inbox[node_of[r]]!FINISH, r, x, (r == a -> ea : eb), RD, val;
    inbox[node_of[w]]!FINISH, w, x, (w == a -> ea : eb), WR, 0;
out:
    atomic { busy[x] = 0; try_start(x) }
}

proctype Agent(byte n)
{
    mtype k;
    byte p, x, e, v, x2, e2;
    bit d;
end:
    do
    :: inbox[n]?k, p, x, e, d, v ->
        atomic {
            if
            :: k == OFFER ->
                assert(home_of[x] == n);
                oe[OFF(x, p)] = e;
                odir[OFF(x, p)] = d;
                ov[OFF(x, p)] = v;
                try_start(x)
            :: k == WITHDRAW ->
                assert(home_of[x] == n);
                drop(x, p, e)
            :: k == CLAIM ->
                assert(node_of[p] == n);
                claim(p, x, e)
            :: k == RELEASE ->
                assert(node_of[p] == n && status[p] == CLAIMED && claimer[p] == x + 1 && epoch[p] == e);
                status[p] = WAITING;
                claimer[p] = 0;
                if
                :: queued[p]?x2, e2 -> claim(p, x2, e2)
                :: empty(queued[p]) -> skip
                fi
            :: k == FINISH ->
                assert(node_of[p] == n && status[p] == CLAIMED && claimer[p] == x + 1 && epoch[p] == e);
                status[p] = DONE;
                claimer[p] = 0;
                chosen[p] = x + 1;
                got[p] = v;
                finished++;
                if
                :: d == RD -> assert(!delivered[v]); delivered[v] = 1
                :: else -> assert(!written[VALUE(p, e)]); written[VALUE(p, e)] = 1
                fi;
                do
                :: queued[p]?x2, e2 -> answer[x2]!FAIL
                :: empty(queued[p]) -> break
                od
            fi
        }
    od
}

proctype Process(byte p)
{
    byte k, g, x;
    do
    :: k < nops[p] ->
        atomic { epoch[p]++; status[p] = WAITING; chosen[p] = 0 }
        g = 0;
        do
        :: g < ng[p] ->
            x = gch[p * NG + g];
            inbox[home_of[x]]!OFFER, p, x, epoch[p], gdir[p * NG + g], VALUE(p, epoch[p]);
            g++
        :: else -> break
        od;
end_wait:
        status[p] == DONE;
        g = 0;
        do
        :: g < ng[p] ->
            x = gch[p * NG + g];
            if
            :: x + 1 != chosen[p] -> inbox[home_of[x]]!WITHDRAW, p, x, epoch[p], 0, 0
            :: else -> skip
            fi;
            g++
        :: else -> break
        od;
        k++
    :: else -> break
    od
}

/* At quiescence: the properties of the header. */
proctype Check(byte expected)
{
    byte x, r, w;
    timeout ->
    atomic {
        r = 0;
        do
        :: r < NP ->
            assert(status[r] != CLAIMED);
            /* A waiting operation's offers are all still at their homes. */
            w = 0;
            do
            :: status[r] == WAITING && w < ng[r] -> assert(oe[OFF(gch[r * NG + w], r)] == epoch[r]); w++
            :: else -> break
            od;
            if
            :: status[r] == DONE && partner[r] != 0 && partner[partner[r] - 1] == r + 1 ->
                assert(chosen[partner[r] - 1] == chosen[r])
            :: else -> skip
            fi;
            r++
        :: else -> break
        od;
        x = 0;
        do
        :: x < NC ->
            r = 0;
            do
            :: r < NP ->
                w = 0;
                do
                :: w < NP ->
                    assert(!(r != w && LIVE(x, r) && odir[OFF(x, r)] == RD &&
                             LIVE(x, w) && odir[OFF(x, w)] == WR));
                    w++
                :: else -> break
                od;
                r++
            :: else -> break
            od;
            x++
        :: else -> break
        od;
        x = 0;
        do
        :: x < NV -> assert(delivered[x] == written[x]); x++
        :: else -> break
        od;
        assert(finished == expected)
    }
}

inline guard(p, g, x, d)
{
    gch[p * NG + g] = x;
    gdir[p * NG + g] = d
}

init {
    atomic {
#if SCEN == 1
        /* Two alternations in opposite directions over two channels with
         * different homes: they must agree on one channel. */
        home_of[0] = 0; home_of[1] = 1; home_of[2] = 2;
        node_of[0] = 0; node_of[1] = 1; node_of[2] = 2;
        nops[0] = 1; ng[0] = 2; guard(0, 0, 0, RD); guard(0, 1, 1, WR);
        nops[1] = 1; ng[1] = 2; guard(1, 0, 0, WR); guard(1, 1, 1, RD);
        nops[2] = 0;
        run Check(2);
#elif SCEN == 2
        /* A cycle: each of three alternations shares one channel with each
         * other, each channel homed on another node.  Exactly one pair
         * commits (then no live pair is left). */
        home_of[0] = 0; home_of[1] = 1; home_of[2] = 2;
        node_of[0] = 1; node_of[1] = 2; node_of[2] = 0;
        nops[0] = 1; ng[0] = 2; guard(0, 0, 0, RD); guard(0, 1, 1, WR);
        nops[1] = 1; ng[1] = 2; guard(1, 0, 0, WR); guard(1, 1, 2, RD);
        nops[2] = 1; ng[2] = 2; guard(2, 0, 1, RD); guard(2, 1, 2, WR);
        run Check(2);
#elif SCEN == 3
        /* Epochs: a reader alternates twice over two channels; two plain
         * writers, one on each.  Its first operation's other offer may be
         * claimed late (stale); both writes must be delivered. */
        home_of[0] = 1; home_of[1] = 2; home_of[2] = 0;
        node_of[0] = 0; node_of[1] = 1; node_of[2] = 2;
        nops[0] = 2; ng[0] = 2; guard(0, 0, 0, RD); guard(0, 1, 1, RD);
        nops[1] = 1; ng[1] = 1; guard(1, 0, 0, WR);
        nops[2] = 1; ng[2] = 1; guard(2, 0, 1, WR);
        run Check(4);
#elif SCEN == 4
        /* Two alternating writers compete for one alternating reader over two
         * channels homed apart: the reader finishes once, with one of them;
         * the other writer stays waiting with nothing to match. */
        home_of[0] = 0; home_of[1] = 1; home_of[2] = 2;
        node_of[0] = 2; node_of[1] = 0; node_of[2] = 1;
        nops[0] = 1; ng[0] = 2; guard(0, 0, 0, RD); guard(0, 1, 1, RD);
        nops[1] = 1; ng[1] = 2; guard(1, 0, 0, WR); guard(1, 1, 1, WR);
        nops[2] = 1; ng[2] = 2; guard(2, 0, 0, WR); guard(2, 1, 1, WR);
        run Check(2);
#endif
        run Agent(0); run Agent(1); run Agent(2);
        run Process(0); run Process(1); run Process(2)
    }
}
