/* The futex semaphore protocol of include/concur/detail/semaphore_word.hpp
   (SemaphoreWord), checked exhaustively with Spin: never more holders than
   permits, the count never goes negative, and no lost wake-up (every
   process finishes; a state where all wait while permits are free is an
   invalid end state). The word holds the count and the waiters bit W;
   release adds n, clears W and wakes every sleeper, who set W again before
   sleeping. Run: tests/model/check.sh */
#define N 3
#define W 16
#define PERMITS 1
#define ROUNDS 2

byte word = PERMITS;
bool sleeping[N + 1];
byte holders = 0;
byte done = 0;

inline futex_wait(expected) {
  atomic { if :: word == (expected) -> sleeping[me] = 1 :: else -> skip fi };
  (sleeping[me] == 0)   /* blocks until futex_wake (or Spurious) clears it */
}

inline futex_wake_all() {
  atomic { sleeping[1] = 0; sleeping[2] = 0; sleeping[3] = 0 }
}

proctype Client(byte me) {
  byte v, round = 0;
  do
  :: round == ROUNDS -> break
  :: round < ROUNDS ->
    do
    :: v = word;
       if
       :: (v & (W - 1)) != 0 ->
          if :: atomic { word == v -> word = v - 1 } ; break
             :: else -> skip
          fi
       :: (v & (W - 1)) == 0 && (v & W) == 0 ->
          if :: atomic { word == v -> word = v | W } ; futex_wait(v | W)
             :: else -> skip
          fi
       :: (v & (W - 1)) == 0 && (v & W) != 0 -> futex_wait(v)
       fi
    od;
    holders++;
    assert(holders <= PERMITS);
    holders--;
    /* release(1): CAS in count + 1 with W cleared; wake all if W was set */
    do
    :: v = word;
       if :: atomic { word == v -> word = (v & (W - 1)) + 1 } ; break
          :: else -> skip
       fi
    od;
    if :: (v & W) != 0 -> futex_wake_all() :: else -> skip fi;
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
  atomic { run Client(1); run Client(2); run Client(3) }
  (done == N);
  assert(word == PERMITS)
}
