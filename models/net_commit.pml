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
 * A node that dies (scenarios with CRASH set: kill -9 or its link down past
 * the heartbeat timeout, at any moment): the network drops what reaches it;
 * every other node's agent learns it from the failure detector at some moment
 * of its own (not ordered with its inbox), and from then on ignores whatever
 * that node sent (fencing: it may come back).  Knowing node c dead, an agent
 *   - drops the offers of c's processes at the channels it homes;
 *   - ends as LOST (ChannelLostException) each operation of its own processes
 *     with a guard on a channel homed at c that is WAITING or CLAIMED by a
 *     matcher of c; one CLAIMED by a matcher elsewhere is LOST if that matcher
 *     RELEASEs it (a FINISH makes it DONE as usual);
 *   - its matchers take a claim of a process of c as failed.
 * So that a writer is never told DONE for a value no reader will have, a
 * matcher FINISHes the reader first and the writer only once the reader's
 * agent has ACKed (or is known dead): a FINISH from a home declared dead is
 * ignored, and its reader then ends LOST.  Delivery is at most once: a reader
 * may have the value of a writer that ends LOST (its home died in between).
 *
 * What is modelled: nodes' agents (one inbox each, FIFO: ZeroMQ keeps order per
 * link, and one inbox merges the links in any order), records, offers, claims
 * and their queues, matchers, withdrawal, epochs (processes that do several
 * operations in turn), one node's death.  Abstracted: the transport's framing
 * and security, messages' bytes (a value is a number), poison and retire,
 * buffered channels, deadlines, and which pair a home picks when several could
 * match (any: FIFO order is one of the choices explored).
 *
 * Checked (models/check_net.sh): no assertion fails, no invalid end state (a
 * matcher or agent wedged), and at quiescence (Promela's timeout), for the
 * processes of live nodes: no record left CLAIMED; every offer of a waiting
 * operation still at its home, none at a dead one; no channel of a live home
 * holding a live reader offer and a live writer offer (a match missed); two
 * parties that finished together chose the same channel; each write's value
 * reached at most one reader (asserted when it arrives), a finished write's
 * value reached its reader unless the reader's node died, and a value that
 * reached a reader came from a write that finished, or ended LOST, or whose
 * node died; with no crash, each scenario's count of finished operations.
 *
 * Seeded mutations (models/check_net.sh --self-test), each must be caught:
 *   MUT_NO_ORDER      claims taken reader first, not in process order
 *   MUT_NO_EPOCH      a claim from an earlier operation taken by a later one
 *   MUT_FAIL_CLAIMED  a claim on a record another matcher holds fails at once
 *   MUT_NO_RELEASE    a matcher whose second claim failed keeps the first
 *   MUT_NO_ACK        the writer FINISHed without waiting for the reader's ACK
 *   MUT_NO_FENCE      messages from a node declared dead still handled
 */

#ifndef SCEN
#define SCEN 1
#endif

#define NN 3          /* nodes */
#define NP 3          /* CSP processes */
#define NC 3          /* channels */
#define NG 2          /* guards per operation at most */
#define NONE 255

#define RD 0
#define WR 1

#define IDLE 0
#define WAITING 1
#define CLAIMED 2
#define DONE 3
#define LOST 4

mtype = { OFFER, WITHDRAW, CLAIM, RELEASE, FINISH, OK, FAIL, ACK };

/* The network: one inbox per node (kind, process, channel, epoch, dir,
 * value, sending node). */
chan inbox[NN] = [10] of { mtype, byte, byte, byte, bit, byte, byte };
/* The failure detector's word to each node: "node c is dead". */
chan notice[NN] = [1] of { byte };
/* A matcher's answers (OK, FAIL or ACK, and the process it is about): one
 * matcher per channel, one claim outstanding, plus late answers of a node
 * that died, which the matcher skips. */
chan answer[NC] = [3] of { mtype, byte };

/* Placement (set by init). */
byte node_of[NP];
byte home_of[NC];
byte nops[NP];
byte ng[NP];
byte gch[NP * NG];
bit gdir[NP * NG];
byte crash_node = NONE;

bit dead[NN];
bit knows[NN * NN];          /* knows[n * NN + c]: node n knows node c is dead */
#define KNOWS(n, c) knows[(n) * NN + (c)]

/* Records: kept by the agent of node_of[p]. */
byte status[NP];
byte epoch[NP];
byte claimer[NP];            /* channel + 1 of the matcher that claimed it */
bit lose_on_release[NP];
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
bit lost_op[NV];             /* operation (p, e) ended LOST */
byte reader_of[NV];          /* process + 1 a matcher handed the value to */
byte partner[NP];            /* process + 1 with whom p last finished */
byte finished;               /* operations finished, all processes */

#define OFF(x, p) ((x) * NP + (p))
#define ALIVE(p) (!dead[node_of[p]])
#define LIVE(x, p) (oe[OFF(x, p)] != 0 && oe[OFF(x, p)] == epoch[p] && status[p] == WAITING)
#define PAIR(x, r, w) (oe[OFF(x, r)] != 0 && odir[OFF(x, r)] == RD && \
                       oe[OFF(x, w)] != 0 && odir[OFF(x, w)] == WR)
#define GUARD_AT(p, c) (home_of[gch[(p) * NG]] == (c) || \
                        (ng[p] == 2 && home_of[gch[(p) * NG + 1]] == (c)))

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

/* At p's agent: p's operation ends LOST; claims waiting on it fail. */
inline lose(p)
{
    status[p] = LOST;
    claimer[p] = 0;
    lose_on_release[p] = 0;
    lost_op[VALUE(p, epoch[p])] = 1;
    do
    :: queued[p]?x2, e2 -> answer[x2]!FAIL, p
    :: empty(queued[p]) -> break
    od
}

/* At p's agent: a claim by the matcher of channel x for epoch e. */
inline claim(p, x, e)
{
    if
#ifdef MUT_NO_EPOCH
    :: status[p] == DONE || status[p] == LOST -> answer[x]!FAIL, p
#else
    :: e != epoch[p] || status[p] == DONE || status[p] == LOST -> answer[x]!FAIL, p
#endif
    :: else ->
        assert(status[p] != IDLE);
        if
        :: status[p] == WAITING -> status[p] = CLAIMED; claimer[p] = x + 1; answer[x]!OK, p
#ifdef MUT_FAIL_CLAIMED
        :: status[p] == CLAIMED -> answer[x]!FAIL, p
#else
        :: status[p] == CLAIMED -> assert(claimer[p] != x + 1); queued[p]!x, e
#endif
        fi
    fi
}

/* In a matcher at home h: the answer about process q, or FAIL once h knows
 * q's node dead (then a late answer of q may stay behind: skipped later). */
inline await(q, h)
{
    do
    :: answer[x]?ans, who ->
        if
        :: who == q -> break
        :: else -> skip
        fi
    :: KNOWS(h, node_of[q]) -> ans = FAIL; break
    od
}

proctype Matcher(byte x; byte r; byte w)
{
    byte a, b, ea, eb, val, who, h;
    mtype ans;
    h = home_of[x];
    {
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
        inbox[node_of[a]]!CLAIM, a, x, ea, 0, 0, h;
        await(a, h);
        if
        :: ans == FAIL -> atomic { drop(x, a, ea) }; goto out
        :: else -> skip
        fi;
        inbox[node_of[b]]!CLAIM, b, x, eb, 0, 0, h;
        await(b, h);
        if
        :: ans == FAIL ->
            atomic { drop(x, b, eb) };
#ifndef MUT_NO_RELEASE
            inbox[node_of[a]]!RELEASE, a, x, ea, 0, 0, h;
#endif
            goto out
        :: else -> skip
        fi;
        atomic {
            drop(x, a, ea);
            drop(x, b, eb);
            reader_of[val] = r + 1;
            partner[r] = w + 1;
            partner[w] = r + 1
        }
        inbox[node_of[r]]!FINISH, r, x, (r == a -> ea : eb), RD, val, h;
#ifndef MUT_NO_ACK
        await(r, h);
#endif
        inbox[node_of[w]]!FINISH, w, x, (w == a -> ea : eb), WR, 0, h;
out:
        atomic { busy[x] = 0; try_start(x) }
    } unless { dead[h] }
}

/* At agent n, on learning that node c is dead. */
inline declare_dead(n, c)
{
    KNOWS(n, c) = 1;
    i = 0;
    do
    :: i < NC * NP ->
        if
        :: home_of[i / NP] == n && node_of[i % NP] == c -> oe[i] = 0
        :: else -> skip
        fi;
        i++
    :: else -> break
    od;
    p = 0;
    do
    :: p < NP ->
        if
        :: node_of[p] == n && (status[p] == WAITING || status[p] == CLAIMED) && GUARD_AT(p, c) ->
            if
            :: status[p] == WAITING || home_of[claimer[p] - 1] == c -> lose(p)
            :: else -> lose_on_release[p] = 1
            fi
        :: else -> skip
        fi;
        p++
    :: else -> break
    od
}

proctype Agent(byte n)
{
    mtype k;
    byte p, x, e, v, src, x2, e2, c, i;
    bit d;
end:
    do
    :: inbox[n]?k, p, x, e, d, v, src ->
        atomic {
            if
            :: dead[n] -> skip            /* the network drops what reaches a dead node */
#ifndef MUT_NO_FENCE
            :: !dead[n] && src != n && KNOWS(n, src) -> skip    /* fenced */
#endif
            :: else ->
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
                    if
                    :: lose_on_release[p] -> lose(p)
                    :: else ->
                        status[p] = WAITING;
                        claimer[p] = 0;
                        if
                        :: queued[p]?x2, e2 -> claim(p, x2, e2)
                        :: empty(queued[p]) -> skip
                        fi
                    fi
                :: k == FINISH ->
                    assert(node_of[p] == n && status[p] == CLAIMED && claimer[p] == x + 1 && epoch[p] == e);
                    status[p] = DONE;
                    claimer[p] = 0;
                    lose_on_release[p] = 0;
                    chosen[p] = x + 1;
                    got[p] = v;
                    finished++;
                    if
                    :: d == RD ->
                        assert(!delivered[v]);
                        delivered[v] = 1;
                        answer[x]!ACK, p
                    :: else ->
                        assert(!written[VALUE(p, e)]);
                        written[VALUE(p, e)] = 1
                    fi;
                    do
                    :: queued[p]?x2, e2 -> answer[x2]!FAIL, p
                    :: empty(queued[p]) -> break
                    od
                fi
            fi
        }
    :: notice[n]?c ->
        atomic {
            if
            :: !dead[n] -> declare_dead(n, c)
            :: else -> skip
            fi
        }
    od
}

proctype Process(byte p)
{
    byte k, g, x;
    {
        do
        :: k < nops[p] ->
            /* A channel whose home this node knows dead: LOST at once. */
            atomic {
                epoch[p]++;
                chosen[p] = 0;
                if
                :: KNOWS(node_of[p], home_of[gch[p * NG]]) ||
                   (ng[p] == 2 && KNOWS(node_of[p], home_of[gch[p * NG + 1]])) ->
                    status[p] = LOST;
                    lost_op[VALUE(p, epoch[p])] = 1
                :: else -> status[p] = WAITING
                fi
            }
            if
            :: status[p] == LOST -> break
            :: else -> skip
            fi;
            g = 0;
            do
            :: g < ng[p] ->
                x = gch[p * NG + g];
                inbox[home_of[x]]!OFFER, p, x, epoch[p], gdir[p * NG + g], VALUE(p, epoch[p]), node_of[p];
                g++
            :: else -> break
            od;
end_wait:
            status[p] == DONE || status[p] == LOST;
            g = 0;
            do
            :: g < ng[p] ->
                x = gch[p * NG + g];
                if
                :: x + 1 != chosen[p] ->
                    inbox[home_of[x]]!WITHDRAW, p, x, epoch[p], 0, 0, node_of[p]
                :: else -> skip
                fi;
                g++
            :: else -> break
            od;
            if
            :: status[p] == LOST -> break     /* ChannelLostException ends it */
            :: else -> k++
            fi
        :: else -> break
        od
    } unless { dead[node_of[p]] }
}

/* One node dies, at any moment; every other node hears of it once. */
proctype Crash(byte c)
{
    byte n;
    dead[c] = 1;
    n = 0;
    do
    :: n < NN ->
        if
        :: n != c -> notice[n]!c
        :: else -> skip
        fi;
        n++
    :: else -> break
    od
}

/* At quiescence: the properties of the header, for live nodes. */
proctype Check(byte expected)
{
    byte x, r, w, v;
    timeout ->
    atomic {
        r = 0;
        do
        :: r < NP ->
            if
            :: ALIVE(r) ->
                assert(status[r] != CLAIMED);
                w = 0;
                do
                :: status[r] == WAITING && w < ng[r] ->
                    assert(oe[OFF(gch[r * NG + w], r)] == epoch[r]);
                    assert(!dead[home_of[gch[r * NG + w]]]);
                    w++
                :: else -> break
                od;
                if
                :: status[r] == DONE && partner[r] != 0 && partner[partner[r] - 1] == r + 1 &&
                   status[partner[r] - 1] == DONE ->
                    assert(chosen[partner[r] - 1] == chosen[r])
                :: else -> skip
                fi
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
                    assert(!(r != w && !dead[home_of[x]] && ALIVE(r) && ALIVE(w) &&
                             LIVE(x, r) && odir[OFF(x, r)] == RD &&
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
        v = 0;
        do
        :: v < NV ->
            assert(!written[v] || delivered[v] || dead[node_of[reader_of[v] - 1]]);
            assert(!delivered[v] || written[v] || lost_op[v] || dead[node_of[v / 8]]);
            v++
        :: else -> break
        od;
        assert(expected == NONE || crash_node != NONE || finished == expected)
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
#elif SCEN == 5
        /* The home of a rendezvous dies, at any moment: its reader and writer
         * live elsewhere; neither may wedge, a writer told DONE had its value
         * read. */
        home_of[0] = 2; home_of[1] = 2; home_of[2] = 2;
        node_of[0] = 0; node_of[1] = 1; node_of[2] = 0;
        nops[0] = 1; ng[0] = 1; guard(0, 0, 0, RD);
        nops[1] = 1; ng[1] = 1; guard(1, 0, 0, WR);
        nops[2] = 0;
        crash_node = 2;
        run Check(NONE);
#elif SCEN == 6
        /* Scenario 1's two alternations, and the node homing one of their
         * channels (no process of theirs) dies at any moment. */
        home_of[0] = 0; home_of[1] = 2; home_of[2] = 2;
        node_of[0] = 0; node_of[1] = 1; node_of[2] = 2;
        nops[0] = 1; ng[0] = 2; guard(0, 0, 0, RD); guard(0, 1, 1, WR);
        nops[1] = 1; ng[1] = 2; guard(1, 0, 0, WR); guard(1, 1, 1, RD);
        nops[2] = 0;
        crash_node = 2;
        run Check(NONE);
#elif SCEN == 7
        /* A writer's node dies at any moment while an alternating reader on
         * another node chooses between it and a writer on a third. */
        home_of[0] = 1; home_of[1] = 0; home_of[2] = 0;
        node_of[0] = 0; node_of[1] = 2; node_of[2] = 1;
        nops[0] = 1; ng[0] = 2; guard(0, 0, 0, RD); guard(0, 1, 1, RD);
        nops[1] = 1; ng[1] = 1; guard(1, 0, 0, WR);
        nops[2] = 1; ng[2] = 1; guard(2, 0, 1, WR);
        crash_node = 2;
        run Check(NONE);
#endif
        run Agent(0); run Agent(1); run Agent(2);
        run Process(0); run Process(1); run Process(2);
        if
        :: crash_node != NONE -> run Crash(crash_node)
        :: else -> skip
        fi
    }
}
