/* The futex lock protocol of include/concur/detail/lock_word.hpp (LockWord),
   checked exhaustively with Spin: mutual exclusion, and no lost wake-up (a
   state where every process sleeps or waits while the lock is free is an
   invalid end state, which Spin reports).
   The word holds the owner (1..N, 0 = free) and the waiters bit W; futex_wait
   sleeps only while the word still equals the value the caller saw, and may
   also return for no reason (EINTR, spurious wake-ups); futex_wake wakes one
   sleeper. Spinning and timeouts are left out: they only add early returns
   to paths modelled here. Run: tests/model/check.sh */
#define N 3
#define W 8          /* the waiters bit (owners are 1..N < W) */
#define ROUNDS 2

byte word = 0;
bool sleeping[N + 1];
byte in_cs = 0;
byte done = 0;

inline futex_wait(expected) {
  atomic { if :: word == (expected) -> sleeping[me] = 1 :: else -> skip fi };
  (sleeping[me] == 0)   /* blocks until futex_wake (or Spurious) clears it */
}

inline futex_wake_one() {
  atomic {
    if
    :: sleeping[1] -> sleeping[1] = 0
    :: sleeping[2] -> sleeping[2] = 0
    :: sleeping[3] -> sleeping[3] = 0
    :: else -> skip
    fi
  }
}

proctype Thread(byte me) {
  byte v, old, round = 0;
  do
  :: round == ROUNDS -> break
  :: round < ROUNDS ->
    /* acquire: the fast path, one CAS 0 -> me */
    if
    :: atomic { word == 0 -> word = me }
    :: else ->
      /* the slow path */
      do
      :: v = word;
         if
         :: v == 0 ->
            if :: atomic { word == 0 -> word = me | W } ; break
               :: else -> skip      /* CAS failed: look again */
            fi
         :: v != 0 && (v & W) == 0 ->
            if :: atomic { word == v -> word = v | W } ; futex_wait(v | W)
               :: else -> skip
            fi
         :: v != 0 && (v & W) != 0 -> futex_wait(v)
         fi
      od
    fi;
    in_cs++;
    assert(in_cs == 1);
    in_cs--;
    /* release: exchange with 0, wake one if the waiters bit was set */
    atomic { old = word; word = 0 };
    if :: (old & W) != 0 -> futex_wake_one() :: else -> skip fi;
    round++
  od;
  done++
}

/* Wakes a sleeper for no reason, at most twice (EINTR, spurious futex
   returns). Bounded, so that a sleeper nobody wakes stays asleep and a lost
   wake-up shows as an invalid end state. */
proctype Spurious() {
  byte left = 2;
  do
  :: left > 0 && sleeping[1] -> atomic { sleeping[1] = 0; left-- }
  :: left > 0 && sleeping[2] -> atomic { sleeping[2] = 0; left-- }
  :: left > 0 && sleeping[3] -> atomic { sleeping[3] = 0; left-- }
  :: left == 0 -> break
  :: done == N -> break
  od
}

init {
  run Spurious();
  atomic { run Thread(1); run Thread(2); run Thread(3) }
  (done == N);
  assert(word == 0)
}
