/* shm_select.pml - the commit protocol of the processes backend's channels
 * and alternations (csp_ext/rules/, csp_ext/shared/channel.c, csp_ext/wait/process.c), for spin.
 *
 * What is modelled, step for step as the C does it (each inline names the C
 * function it stands for):
 *   - waiter records: the status word (WAITING -> CLAIMED -> final) that is
 *     the commit point, the separate `claimer` pid field, the result fields
 *     (chosen, msg), the `sleeping` flag and the futex wait/wake;
 *   - channels: one robust lock each (a dead owner makes the next locker run
 *     chan_recover), FIFO reader and writer offer queues, a ring of capacity
 *     0 (rendezvous) or 1, poison;
 *   - shm_select: lock every channel of the guards in offset order, pass 1
 *     (try each guard in scan order), pass 2 (prepare, link one offer per
 *     guard, unlock, wait), withdrawal after the wake-up;
 *     shm_read/shm_write are the one-guard case (same steps, same order);
 *   - claim by CAS under the offer's channel lock, then finish;
 *   - a process dying anywhere (kill -9): its locks stay held (shared/lock.c's
 *     robust lock, its owner dead), its claims stay CLAIMED; its parent then
 *     reaps its record (reap_record) and poisons the channels it had (pycsp/processes/_fork.py
 *     _reap -> poison_all -> channel_poison);
 *   - claimer-death recovery (check_claimer): a waiter that sees CLAIMED and
 *     a claimer pid that is gone moves CLAIMED -> POISONED by CAS.
 *
 * What is abstracted away, and why:
 *   - time: check_claimer's 0.1 s grace and spin_while_pending's polling
 *     budget become "at any moment" (an over-approximation: every timing
 *     the C allows is explored); no deadlines, no TIMEOUT guards, no
 *     signals/CSP_RETRY (the main thread's bounded slices would also hide a
 *     lost wake-up: the model waits like a non-main thread, untimed);
 *   - deadlock accounting (n_active, break_deadlock, mark_blocked): the
 *     model checks that no process is wedged without that last resort;
 *   - retire, messages' bytes (a message is a number), the allocator, the
 *     ring's growth (ring_reserve), the registry and the hdr lock;
 *   - queue pointer surgery: offer_link/offer_unlink are one atomic step
 *     each (they run under the channel lock; the only lock-free reader of
 *     their state is `linked`).  A death half-way through a list update
 *     (torn prev/next) is therefore not modelled;
 *   - memory ordering: sequential consistency (the C uses seq_cst atomics on
 *     the status word, and the lock for the rest).
 *
 * Build-time switches:
 *   SCEN=n            the scenario (see init below)
 *   MUT_*             seeded mutations for the self-test (models/check.sh -s)
 *   FIX_*             the repairs proposed for the bugs this model finds in
 *                     the C (models/README.md); NOT what the C does today
 *
 * Properties (LTL claims over ghost flags, one run each: pan -N name):
 *   one_commit   an operation commits at most one guard; one that returns
 *                DONE committed exactly the guard it reports; two opposite
 *                alternations commit on the same channel
 *   claim        only the claimer publishes a claimed waiter's final status,
 *                exactly once; recovery takes a claim only from a claimer
 *                that is gone
 *   conservation every message is handed over at most once, and at the end
 *                each message is where the results say: with its reader
 *                (which returned it), in the buffer, or dropped by poison
 *                iff its writer reports it delivered
 *   lock_order   channel locks are taken in increasing offset order, and
 *                queues are touched only by the lock holder
 *   withdrawal   when an operation returns, none of its offers is linked;
 *                an offer is never linked twice
 *   progress     <> all_done under weak fairness: every live process ends
 * and, with no claim (pan -E off), no invalid end state: nobody is wedged.
 */

#ifndef SCEN
#define SCEN 1
#endif

#define NW 3            /* worker processes (CSP processes) */
#define REAPER NW       /* process number of the parent that reaps */
#define NPROC (NW+1)
#define NCH 2           /* channels; their index is their offset order */
#define NG 2            /* guards per operation */
#define MAXOPS 2        /* operations per worker */
#define QL 3            /* queue length bound */
#define NMSG (NW*MAXOPS*NG+1)
#define NONE 255

/* waiter status: rules/status.h enum csp_status plus CSP_CLAIMED_BY(pid) */
#define S_WAITING 0
#define S_DONE 1
#define S_POISONED 2
#define S_CANCELLED 7
#define S_CLAIMED 100

/* where a message is (ghost) */
#define H_WRITER 0      /* with its writer (offered or not) */
#define H_BUF 50        /* in its channel's ring */
#define H_DROP 51       /* dropped from a ring by poison or recovery */
/* 1..NW: handed to reader number holder-1 */

#define GI(w, op, g) (((w)*MAXOPS + (op))*NG + (g))
#define OI(w, op) ((w)*MAXOPS + (op))
#define MSG(w, op, g) (GI(w, op, g) + 1)

/* ---------------- the scenario (set by init) ---------------- */
byte nw;                        /* workers in this scenario */
byte nops[NW];
byte opn[NW*MAXOPS];            /* guards of each operation */
byte gch[NW*MAXOPS*NG];         /* guard's channel */
bit  gwr[NW*MAXOPS*NG];         /* guard is a write */
byte cap[NCH];
byte mortal = NONE;             /* the worker that may be killed */
bit  opposite;                  /* workers 0 and 1 are opposite alternations */

/* ---------------- shared state (the arena) ---------------- */
/* shm_waiter */
byte status[NW];
bit  sleeping[NW];
byte claimer[NW];               /* process number + 1; 0 = none yet */
byte wchosen[NW];
byte wmsg[NW];
byte noffers[NW];
/* shm_offer: worker w's offer slot g is w*NG+g */
byte o_chan[NW*NG];
bit  o_wr[NW*NG];
byte o_msg[NW*NG];
byte o_idx[NW*NG];
bit  o_linked[NW*NG];
/* shm_channel */
byte lockowner[NCH];            /* process number + 1; 0 = free */
bit  poisoned[NCH];
byte count[NCH];
byte ring[NCH];
/* offer queues: queue Q(c, 0) is c's readers, Q(c, 1) its writers; FIFO,
 * each entry an offer + 1 (rq_head..rq_tail, wq_head..wq_tail) */
#define Q(c, isw) ((c)*2 + (isw))
byte q[NCH*2*QL];
byte qn[NCH*2];

/* ---------------- the kernel ---------------- */
bit  infutex[NW];               /* asleep in FUTEX_WAIT on its status word */
bit  gone[NPROC];               /* ended, killed or not (process_gone) */
bit  dead[NW];                  /* killed */
bit  kill_req;

/* ---------------- ghosts ---------------- */
byte claim_by[NW];              /* who really holds the claim (set with the CAS) */
byte commits[NW];               /* guards committed in the current operation */
byte holder[NMSG];
byte rst[NW*MAXOPS];            /* each operation's result: status */
byte rch[NW*MAXOPS];            /*   chosen guard */
byte rmsg[NW*MAXOPS];           /*   message received */
bit  torn[NW];                  /* its current commit's claimer was killed */
bit  rtorn[NW*MAXOPS];
bit  bad_one, bad_claim, bad_cons, bad_lock, bad_wd;
bit  all_done;
byte nended;                    /* processes ended */
hidden byte qi;

ltl one_commit   { [] !bad_one }
ltl claim        { [] !bad_claim }
ltl conservation { [] !bad_cons }
ltl lock_order   { [] !bad_lock }
ltl withdrawal   { [] !bad_wd }
ltl progress     { <> all_done }

#define CHECK(flag, e) if :: !(e) -> flag = 1 :: else -> skip fi

/* the caller holds channel c's lock */
#define LOCKCHK(c) CHECK(bad_lock, lockowner[c] == me+1)

/* ---------------- queues (channel lock held) ---------------- */

inline q_remove(qq, o)
{
    qi = 0;
    do
    :: qi < qn[qq] && q[qq*QL+qi] != o+1 -> qi++
    :: else -> break
    od;
    assert(qi < qn[qq]);
    do
    :: qi+1 < qn[qq] -> q[qq*QL+qi] = q[qq*QL+qi+1]; qi++
    :: else -> break
    od;
    qn[qq]--;
    q[qq*QL+qn[qq]] = 0
}

/* offer_link */
inline offer_link(c, o)
{
    d_step {
        LOCKCHK(c);
        CHECK(bad_wd, !o_linked[o]);
        assert(qn[Q(c, o_wr[o])] < QL);
        q[Q(c, o_wr[o])*QL + qn[Q(c, o_wr[o])]] = o+1;
        qn[Q(c, o_wr[o])]++;
        o_linked[o] = 1
    }
}

/* offer_unlink: no-op if not linked */
inline offer_unlink(c, o)
{
    d_step {
        LOCKCHK(c);
        if
        :: o_linked[o] ->
            q_remove(Q(c, o_wr[o]), o);
            o_linked[o] = 0
        :: else -> skip
        fi
    }
}

/* ---------------- waiters (shm.c) ---------------- */

/* shm_waiter_claim: CAS WAITING -> CLAIMED, then w->claimer = my_pid */
inline shm_waiter_claim(w, ok)
{
#ifdef MUT_NO_CAS
    /* mutation: a plain load and a plain store instead of the CAS */
    ok = (status[w] == S_WAITING);
    if
    :: ok -> status[w] = S_CLAIMED; claim_by[w] = me+1
    :: else -> skip
    fi;
#else
    d_step {
        if
        :: status[w] == S_WAITING ->
            status[w] = S_CLAIMED; claim_by[w] = me+1; ok = 1
#ifdef FIX_CLAIMER
            /* proposed fix: the claimer's pid in the same word as CLAIMED */
            ; claimer[w] = me+1
#endif
        :: else -> ok = 0
        fi
    };
#endif
#ifndef FIX_CLAIMER
    if
    :: ok -> claimer[w] = me+1
    :: else -> skip
    fi
#endif
}

/* the status store of shm_waiter_finish: the commit is published (the
 * ghosts count a DONE as the commit of one guard, and the message as handed
 * to the reader: a claimer that dies before this store delivered nothing) */
inline publish(w, st, m)
{
    d_step {
        CHECK(bad_claim, status[w] == S_CLAIMED && claim_by[w] == me+1);
        status[w] = st;
        if
        :: st == S_DONE -> commits[w]++; CHECK(bad_one, commits[w] <= 1)
        :: else -> skip
        fi;
        if
        :: m != 0 -> CHECK(bad_cons, holder[m] == H_WRITER); holder[m] = w+1
        :: else -> skip
        fi
    }
}

/* shm_waiter_finish(w, st, idx, m): result fields, (waiter_reactivate:
 * abstracted), status store, then wake if sleeping */
inline shm_waiter_finish(w, st, idx, m)
{
    d_step {
        /* (ghost) a waiter's message slot never overwrites a message */
        CHECK(bad_cons, m == 0 || wmsg[w] == 0);
        wchosen[w] = idx;
        wmsg[w] = m
    };
#ifdef MUT_WAKE_FIRST
    /* mutation: look at `sleeping` before publishing the status (survives:
     * a waiter sleeps only on WAITING, and CLAIMED comes first) */
    if
    :: sleeping[w] -> infutex[w] = 0
    :: else -> skip
    fi;
    publish(w, st, m)
#else
    publish(w, st, m);
    if
    :: sleeping[w] -> infutex[w] = 0      /* shared_futex_wake */
    :: else -> skip
    fi
#endif
}

/* check_claimer(w): CLAIMED, and the claimer's pid is a process that is
 * gone: CAS CLAIMED -> POISONED.  (The 0.1 s grace is abstracted.) */
inline check_claimer(w)
{
#ifndef MUT_NO_CLAIMER_CHECK
    cl = claimer[w];
    d_step {
        if
        :: cl != 0 && gone[cl-1] && status[w] == S_CLAIMED ->
            CHECK(bad_claim, gone[claim_by[w]-1]);
            status[w] = S_POISONED
        :: else -> skip
        fi
    }
#else
    skip
#endif
}

/* shm_waiter_wait -> waiter_wait_watched, no deadline.  A thread other
 * than a process's main thread sleeps untimed; the main thread (the CSP
 * process of a forked child) in bounded slices (0.1 s): SLICED_WAIT.
 * spin_while_pending is abstracted: polling only re-reads status */
inline shm_waiter_wait(st)
{
    do
    :: st = status[me];
        if
        :: st != S_WAITING && st != S_CLAIMED -> break
        :: st == S_CLAIMED -> check_claimer(me)
        :: st == S_WAITING ->
            sleeping[me] = 1;
            if
            :: status[me] == S_WAITING ->
                /* shared_futex_wait(&status, WAITING): the kernel compares
                 * and queues atomically, then sleeps until a wake */
#ifndef MUT_FUTEX_NO_COMPARE
                atomic {
                    if
                    :: status[me] == S_WAITING -> infutex[me] = 1
                    :: else -> skip
                    fi
                };
#else
                /* mutation: sleep without the kernel's compare */
                infutex[me] = 1;
#endif
#ifdef SLICED_WAIT
                /* a main thread waits in bounded slices (csp_sigwatch) */
                if
                :: infutex[me] == 0 -> skip
                :: infutex[me] = 0          /* the slice ran out */
                fi
#else
                (infutex[me] == 0)
#endif
            :: else -> skip
            fi;
            sleeping[me] = 0
        fi
    od
}

/* ---------------- channels (shm_channel.c) ---------------- */

/* chan_lock: shm_lock_acquire (robust: a dead owner's lock is taken over,
 * EOWNERDEAD) and chan_recover on EOWNERDEAD */
inline chan_lock(c)
{
    atomic {
        /* (ghost) locks are taken in increasing offset order */
        qi = c;
        do
        :: qi < NCH -> CHECK(bad_lock, lockowner[qi] != me+1); qi++
        :: else -> break
        od;
#ifdef MUT_NOT_ROBUST
        (lockowner[c] == 0) -> was_dead = 0;
#else
        (lockowner[c] == 0 || gone[lockowner[c]-1]) ->
        was_dead = (lockowner[c] != 0);
#endif
        lockowner[c] = me+1
    };
    if
    :: was_dead -> chan_recover(c)
    :: else -> skip
    fi
}

/* chan_unlock */
inline chan_unlock(c)
{
    d_step { LOCKCHK(c); lockowner[c] = 0 }
}

/* chan_recover: walk both queues, unlink each offer (linked = 0), claim its
 * waiter and finish it POISONED; then drop the queues and the ring */
inline chan_recover(c)
{
    k = 0;
    do
    :: k < qn[Q(c,0)] + qn[Q(c,1)] ->
        d_step {
            if
            :: k < qn[Q(c,0)] -> o = q[Q(c,0)*QL+k] - 1
            :: else -> o = q[Q(c,1)*QL+k-qn[Q(c,0)]] - 1
            fi;
            w = o / NG;
            idx = o_idx[o];
            o_linked[o] = 0
        };
        shm_waiter_claim(w, ok);
        if
        :: ok -> shm_waiter_finish(w, S_POISONED, idx, 0)
        :: else -> skip
        fi;
        k++
    :: else -> break
    od;
    skip;   /* (a loop's exit may not jump into a d_step) */
    d_step {
        qi = 0;
        do
        :: qi < QL -> q[Q(c,0)*QL+qi] = 0; q[Q(c,1)*QL+qi] = 0; qi++
        :: else -> break
        od;
        qn[Q(c,0)] = 0;
        qn[Q(c,1)] = 0;
        if
        :: count[c] > 0 -> holder[ring[c]] = H_DROP; ring[c] = 0
        :: else -> skip
        fi;
        count[c] = 0;
        poisoned[c] = 1
    }
}

/* head offer of queue qq: its waiter, index (and message) */
inline q_head(qq)
{
    d_step {
        o = q[qq*QL] - 1;
        w = o / NG;
        idx = o_idx[o];
        m = o_msg[o]
    }
}

/* the loop shared by wake_queue, try_read_locked, try_write_locked: take
 * the head offer out, then claim its waiter (FIX_CLAIM_FIRST: the other
 * way round, so that a claimer that dies leaves the offer reachable) */
inline unlink_and_claim(c)
{
#ifdef FIX_CLAIM_FIRST
    shm_waiter_claim(w, ok);
    offer_unlink(c, o)
#else
    offer_unlink(c, o);
    shm_waiter_claim(w, ok)
#endif
}

/* wake_queue(c, writers, status) */
inline wake_queue(qq, c, st)
{
    do
    :: qn[qq] > 0 ->
        q_head(qq);
        unlink_and_claim(c);
        if
        :: ok -> shm_waiter_finish(w, st, idx, 0)
        :: else -> skip
        fi
    :: else -> break
    od;
    skip
}

/* poison_locked */
inline poison_locked(c)
{
    if
    :: !poisoned[c] ->
        poisoned[c] = 1;
        wake_queue(Q(c,0), c, S_POISONED);
        wake_queue(Q(c,1), c, S_POISONED);
        d_step {
            if
            :: count[c] > 0 ->
                CHECK(bad_cons, holder[ring[c]] == H_BUF);
                holder[ring[c]] = H_DROP; ring[c] = 0; count[c] = 0
            :: else -> skip
            fi
        }
    :: else -> skip
    fi
}

/* try_read_locked(c, &got): r = 1 took a message, 0 would block, 2 poisoned */
inline try_read_locked(c, got, r)
{
    if
    :: poisoned[c] -> r = 2
    :: !poisoned[c] && count[c] > 0 ->
        d_step {
            got = ring[c]; count[c]--; ring[c] = 0;
            CHECK(bad_cons, holder[got] == H_BUF);
            holder[got] = me+1
        };
        /* a blocked writer's message takes the freed slot */
        do
        :: qn[Q(c,1)] > 0 ->
            q_head(Q(c,1));
            unlink_and_claim(c);
            if
            :: ok ->
                d_step {
                    CHECK(bad_cons, holder[m] == H_WRITER);
                    ring[c] = m; count[c]++; holder[m] = H_BUF
                };
                shm_waiter_finish(w, S_DONE, idx, 0);
                break
            :: else -> skip
            fi
        :: else -> break
        od;
        r = 1
    :: !poisoned[c] && count[c] == 0 ->
        r = 0;
        do
        :: qn[Q(c,1)] > 0 ->
            q_head(Q(c,1));
            unlink_and_claim(c);
            if
            :: ok ->
                d_step {
                    got = m;
                    CHECK(bad_cons, holder[m] == H_WRITER);
                    holder[m] = me+1
                };
                shm_waiter_finish(w, S_DONE, idx, 0);
                r = 1;
                break
            :: else -> skip
            fi
        :: else -> break
        od
    fi
}

/* try_write_locked(c, mm): r = 1 delivered, 0 would block, 2 poisoned */
inline try_write_locked(c, mm, r)
{
    if
    :: poisoned[c] -> r = 2
    :: else ->
        r = 0;
        do
        :: qn[Q(c,0)] > 0 ->
            q_head(Q(c,0));
            unlink_and_claim(c);
            if
            :: ok -> shm_waiter_finish(w, S_DONE, idx, mm); r = 1; break
            :: else -> skip
            fi
        :: else -> break
        od;
        if
        :: r == 0 && count[c] < cap[c] ->
            d_step {
                CHECK(bad_cons, holder[mm] == H_WRITER);
                ring[c] = mm; count[c]++; holder[mm] = H_BUF
            };
            r = 1
        :: else -> skip
        fi
    fi
}

/* shm_waiter_withdraw(wt): every offer still linked (read without the lock)
 * is unlinked under its channel's lock */
inline shm_waiter_withdraw(wt)
{
#ifndef MUT_NO_WITHDRAW
    j = 0;
    do
    :: j < noffers[wt] ->
        if
        :: o_linked[wt*NG+j] ->
            c = o_chan[wt*NG+j];
            chan_lock(c);
            offer_unlink(c, wt*NG+j);
            chan_unlock(c)
        :: else -> skip
        fi;
        j++
    :: else -> break
    od
#else
    skip
#endif
}

/* ---------------- shm_select ---------------- */

/* lock each distinct channel of operation `op` once, in offset order
 * (MUT_NO_LOCK_ORDER: in scan order instead) */
inline lock_all(op)
{
#ifndef MUT_NO_LOCK_ORDER
    do
    :: c < NCH ->
        if
        :: (opn[OI(me,op)] > 0 && gch[GI(me,op,0)] == c) ||
           (opn[OI(me,op)] > 1 && gch[GI(me,op,1)] == c) -> chan_lock(c)
        :: else -> skip
        fi;
        c++
    :: else -> break
    od
#else
    g = 0;
    do
    :: g < opn[OI(me,op)] ->
        c = gch[GI(me,op,g)];
        if
        :: g == 1 && gch[GI(me,op,0)] == c -> skip
        :: else -> chan_lock(c)
        fi;
        g++
    :: else -> break
    od
#endif
}

inline unlock_all(op)
{
    c = 0;
    do
    :: c < NCH ->
        if
        :: lockowner[c] == me+1 -> chan_unlock(c)
        :: else -> skip
        fi;
        c++
    :: else -> break
    od
}

inline shm_select(op)
{
    d_step {
        commits[me] = 0;
        torn[me] = 0;
        got = 0;
        chosen = NONE;
        ng = opn[OI(me,op)];
        c = 0
    };
    lock_all(op);
    /* pass 1, in scan order */
    atomic { r = 0; g = 0 };
    do
    :: g < ng && chosen == NONE && r != 2 ->
        c = gch[GI(me,op,g)];
        if
        :: gwr[GI(me,op,g)] -> try_write_locked(c, MSG(me,op,g), r)
        :: else -> try_read_locked(c, got, r)
        fi;
        if
        :: r == 1 -> chosen = g; commits[me]++
        :: else -> skip
        fi;
        g++
    :: else -> break
    od;
    if
    :: chosen != NONE || r == 2 ->
        unlock_all(op);
        st = (chosen != NONE -> S_DONE : S_POISONED)
    :: else ->
        /* pass 2: shm_waiter_prepare, one offer per guard, unlock, wait */
        d_step {
            noffers[me] = 0;
            wchosen[me] = NONE;
            wmsg[me] = 0;
            status[me] = S_WAITING
        };
        g = 0;
        do
        :: g < ng ->
            d_step {
                o = me*NG + g;
                o_chan[o] = gch[GI(me,op,g)];
                o_wr[o] = gwr[GI(me,op,g)];
                o_msg[o] = (o_wr[o] -> MSG(me,op,g) : 0);
                o_idx[o] = g
            };
            offer_link(o_chan[o], o);
            g++
        :: else -> break
        od;
        noffers[me] = ng;
        unlock_all(op);
        shm_waiter_wait(st);
        shm_waiter_withdraw(me);
        noffers[me] = 0;
        if
        :: st == S_DONE -> chosen = wchosen[me]; got = wmsg[me]; wmsg[me] = 0
        :: else -> skip
        fi
    fi;
    /* what the operation returns */
    d_step {
        rst[OI(me,op)] = st;
        rch[OI(me,op)] = chosen;
        rmsg[OI(me,op)] = got;
        rtorn[OI(me,op)] = torn[me];
        CHECK(bad_wd, !o_linked[me*NG] && !o_linked[me*NG+1]);
        CHECK(bad_one, commits[me] <= 1);
        if
        :: st == S_DONE ->
            CHECK(bad_one, commits[me] == 1 && chosen < ng);
            if
            :: chosen < ng && !gwr[GI(me,op,chosen)] -> CHECK(bad_cons, got != 0)
            :: else -> skip
            fi
        :: else -> skip
        fi
    }
}

/* ---------------- processes ---------------- */

proctype worker(byte me)
{
    byte op, ng, g, c, j, k, o, w, idx, m, r, st, got, chosen, cl;
    bit ok, was_dead;
    {
        op = 0;
        do
        :: op < nops[me] -> shm_select(op); op++
        :: else -> break
        od
    } unless {
        /* killed: a commit this process had claimed but not published is
         * torn (its peer's operation may end either way, see final_check) */
        atomic {
            mortal == me && kill_req -> dead[me] = 1;
            qi = 0;
            do
            :: qi < NW ->
                if
                :: status[qi] == S_CLAIMED && claim_by[qi] == me+1 -> torn[qi] = 1
                :: else -> skip
                fi;
                qi++
            :: else -> break
            od
        }
    };
    atomic { gone[me] = 1; nended++ }
}

/* the killer: kills the mortal worker at any one moment, or never */
proctype killer()
{
    if
    :: kill_req = 1
    :: skip
    fi
}

/* the parent of the mortal worker: after it has ended, py_shm_reap ->
 * reap_record (CAS WAITING -> CANCELLED; while CLAIMED, check_claimer;
 * withdraw its offers), and if it was killed, _reap's poison_all on the
 * channels it had (channel_poison: chan_lock, poison_locked, chan_unlock) */
proctype reaper()
{
    byte me = REAPER;
    byte c, j, k, o, w, idx, m, st, cl, x;
    bit ok, was_dead;
    gone[mortal] == 1;
    d_step {
        if
        :: status[mortal] == S_WAITING -> status[mortal] = S_CANCELLED
        :: else -> skip
        fi
    };
    do
    :: status[mortal] == S_CLAIMED -> check_claimer(mortal)
    :: else -> break
    od;
    shm_waiter_withdraw(mortal);
    if
    :: dead[mortal] ->
        x = 0;
        do
        :: x < NCH ->
            if
            :: (gch[GI(mortal,0,0)] == x) ||
               (opn[OI(mortal,0)] > 1 && gch[GI(mortal,0,1)] == x) ||
               (nops[mortal] > 1 && gch[GI(mortal,1,0)] == x) ||
               (nops[mortal] > 1 && opn[OI(mortal,1)] > 1 && gch[GI(mortal,1,1)] == x) ->
                c = x;
                chan_lock(c);
                poison_locked(c);
                chan_unlock(c)
            :: else -> skip
            fi;
            x++
        :: else -> break
        od
    :: else -> skip
    fi;
    nended++
}

/* ---------------- scenarios ---------------- */

inline guard(w, op, g, ch, wr)
{
    gch[GI(w,op,g)] = ch;
    gwr[GI(w,op,g)] = wr;
    opn[OI(w,op)] = g+1
}

#define R 0
#define W 1

/* the end: every message is where the results say it is */
inline final_check()
{
    d_step {
        x = 0;
        do
        :: x < nw*MAXOPS*NG ->      /* x = GI(w, op, g) */
            w = x / (MAXOPS*NG);
            op = (x / NG) % MAXOPS;
            g = x % NG;
            m = x + 1;
            if
            :: op < nops[w] && g < opn[OI(w,op)] && !dead[w] ->
                if
                :: gwr[x] ->
                    /* delivered iff the writer's operation says so (unless
                     * the peer that had claimed it was killed mid-commit) */
                    CHECK(bad_cons, rtorn[OI(w,op)] ||
                                    (rst[OI(w,op)] == S_DONE && rch[OI(w,op)] == g)
                                    == (holder[m] != H_WRITER))
                :: else ->
                    /* a read that returned m holds it */
                    if
                    :: rst[OI(w,op)] == S_DONE && rch[OI(w,op)] == g ->
                        CHECK(bad_cons, rmsg[OI(w,op)] != 0 &&
                                        holder[rmsg[OI(w,op)]] == w+1)
                    :: else -> skip
                    fi
                fi
            :: else -> skip
            fi;
            /* a message handed to a live reader was returned by it */
            if
            :: holder[m] >= 1 && holder[m] <= NW && !dead[holder[m]-1] ->
                w = holder[m]-1;
                CHECK(bad_cons, (nops[w] > 0 && rmsg[OI(w,0)] == m && rst[OI(w,0)] == S_DONE) ||
                                (nops[w] > 1 && rmsg[OI(w,1)] == m && rst[OI(w,1)] == S_DONE))
            :: holder[m] == H_BUF ->
                CHECK(bad_cons, ring[0] == m && count[0] == 1 || ring[1] == m && count[1] == 1)
            :: else -> skip
            fi;
            x++
        :: else -> break
        od;
        if
        :: opposite && !dead[0] && !dead[1] ->
            /* two opposite alternations commit on one channel */
            CHECK(bad_one, rst[OI(0,0)] == S_DONE && rst[OI(1,0)] == S_DONE &&
                           gch[GI(0,0,rch[OI(0,0)])] == gch[GI(1,0,rch[OI(1,0)])])
        :: else -> skip
        fi
    }
}

init {
    byte x, w, op, g, m;
    d_step {
#if SCEN == 1 || SCEN == 2
        /* opposite alternations: A {read c0, write c1}, B {read c1, write c0}
         * (B's scan order is the reverse of the offset order); SCEN 2: c1
         * has a buffer of 1 */
        nw = 2;
        nops[0] = 1; guard(0, 0, 0, 0, R); guard(0, 0, 1, 1, W);
        nops[1] = 1; guard(1, 0, 0, 1, R); guard(1, 0, 1, 0, W);
#if SCEN == 2
        cap[1] = 1;
#else
        opposite = 1;
#endif
#elif SCEN == 3 || SCEN == 4
        /* competing writers: A {read c0, read c1} twice, B write c0, C write
         * c1; SCEN 4: c1 has a buffer of 1 */
        nw = 3;
        nops[0] = 2; guard(0, 0, 0, 0, R); guard(0, 0, 1, 1, R);
                     guard(0, 1, 0, 0, R); guard(0, 1, 1, 1, R);
        nops[1] = 1; guard(1, 0, 0, 0, W);
        nops[2] = 1; guard(2, 0, 0, 1, W);
#if SCEN == 4
        cap[1] = 1;
#endif
#elif SCEN == 5
        /* a full buffer and a blocked writer: c0 has a buffer of 1; A reads
         * c0 twice, B writes c0 twice (the refill in try_read_locked) */
        nw = 2;
        cap[0] = 1;
        nops[0] = 2; guard(0, 0, 0, 0, R); guard(0, 1, 0, 0, R);
        nops[1] = 2; guard(1, 0, 0, 0, W); guard(1, 1, 0, 0, W);
#elif SCEN == 6
        /* a writer killed at any moment: A reads c0, B (mortal) writes c0 */
        nw = 2;
        nops[0] = 1; guard(0, 0, 0, 0, R);
        nops[1] = 1; guard(1, 0, 0, 0, W);
        mortal = 1;
#elif SCEN == 7
        /* an alternation killed at any moment: the opposite pair, B mortal */
        nw = 2;
        nops[0] = 1; guard(0, 0, 0, 0, R); guard(0, 0, 1, 1, W);
        nops[1] = 1; guard(1, 0, 0, 1, R); guard(1, 0, 1, 0, W);
        mortal = 1;
#elif SCEN == 8
        /* a reader killed at any moment, buffer of 1: A writes c0 twice,
         * B (mortal) reads c0 */
        nw = 2;
        cap[0] = 1;
        nops[0] = 2; guard(0, 0, 0, 0, W); guard(0, 1, 0, 0, W);
        nops[1] = 1; guard(1, 0, 0, 0, R);
        mortal = 1;
#endif
        x = 0;
        do
        :: x < NW -> status[x] = S_DONE; wchosen[x] = NONE; x++
        :: else -> break
        od
    };
    atomic {
        x = 0;
        do
        :: x < nw -> run worker(x); x++
        :: else -> break
        od;
        if
        :: mortal != NONE -> run killer(); run reaper()
        :: else -> skip
        fi
    };
    /* every worker ended (or was killed), and the reaper is done */
    (nended == nw + (mortal != NONE -> 1 : 0));
    final_check();
    all_done = 1
}
