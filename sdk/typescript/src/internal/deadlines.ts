/**
 * Per-call timeouts, cheap on the path every call takes.
 *
 * On Node.js one coarse timer per client watches every call in flight, instead of a
 * `setTimeout` + `clearTimeout` pair per call; a call fails with a timeout between `timeoutMs`
 * and `timeoutMs + tick` after it started, and the timer runs only while calls are in flight.
 * While the server answers in time, calls carry no `AbortSignal` either: undici's per-request
 * handling of a caller's signal (listeners, a weak reference and a finalizer per request, plus
 * the controller itself) was most of what a `getUser()` cost beyond a bare `fetch`
 * (bench/getuser.mjs). Such a call is raced against its deadline instead: the caller gets its
 * timeout on time, and the request runs on without it until the server answers (a late answer is
 * discarded) or undici's own timeouts end it. That is bounded: at most {@link MAX_UNGUARDED}
 * requests without a signal are ever in flight, and once one times out every call carries a
 * signal — aborted at its deadline, closing the connection — for a while.
 *
 * Elsewhere (edge runtimes, Workers: timers there may belong to the request that set them) each
 * call has its own timer and signal.
 */
export interface Deadline {
  /** Aborts the request at the deadline; `null` on the fast path (raced instead). */
  readonly controller: AbortController | null;
  /** True once the deadline passed. */
  timedOut: boolean;
  at: number;
  timer?: ReturnType<typeof setTimeout>;
  /** Called at the deadline: rejects the current race, or ends a `node:http` request. */
  fail?: (err: Error) => void;
  /** Fast path: still counted among the requests without a signal. */
  unguarded: boolean;
}

export interface Deadlines {
  /** `signal: false` for a call its transport ends itself through {@link Deadline.fail}. */
  start(signal?: boolean): Deadline;
  /** `p`, rejected at the deadline when the call has no signal (`p` itself runs on). */
  race<T>(p: Promise<T>, d: Deadline): Promise<T>;
  /** The caller is done with the call: stop watching it. */
  done(d: Deadline): void;
  /** The request itself is over (answered, failed or discarded). */
  release(d: Deadline): void;
}

/** Requests without an abort signal in flight at most (per client). */
export const MAX_UNGUARDED = 64;

const timedOutError = () => new Error("deadline passed");

/** Node.js: one shared sweeper, and no signal while the server answers in time. */
function sweeping(timeoutMs: number): Deadlines {
  const tick = Math.max(1, Math.min(100, Math.ceil(timeoutMs / 10)));
  // The same timeout for every call: insertion order is deadline order, so a sweep stops at the
  // first call still in time.
  const pending = new Set<Deadline>();
  let timer: ReturnType<typeof setInterval> | null = null;
  let unguarded = 0;
  // After a timeout, every call carries a signal until then.
  let guardedUntil = 0;
  const cooldownMs = Math.max(10 * timeoutMs, 10_000);

  const sweep = () => {
    const now = Date.now();
    for (const d of pending) {
      if (d.at > now) break;
      pending.delete(d);
      d.timedOut = true;
      guardedUntil = now + cooldownMs;
      d.controller?.abort();
      d.fail?.(timedOutError());
    }
    if (pending.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };

  return {
    start(signal = true) {
      const now = Date.now();
      const fast = signal && unguarded < MAX_UNGUARDED && now >= guardedUntil;
      if (fast) unguarded++;
      const d: Deadline = {
        controller: signal && !fast ? new AbortController() : null,
        timedOut: false,
        at: now + timeoutMs,
        unguarded: fast,
      };
      pending.add(d);
      if (timer === null) {
        timer = setInterval(sweep, tick);
        // Never keep a process alive just to watch calls.
        (timer as { unref?: () => void }).unref?.();
      }
      return d;
    },
    race(p, d) {
      if (d.controller) return p;
      if (d.timedOut) return Promise.reject(timedOutError());
      return new Promise((resolve, reject) => {
        d.fail = reject;
        p.then(resolve, reject);
      });
    },
    done(d) {
      pending.delete(d);
    },
    release(d) {
      if (d.unguarded) {
        d.unguarded = false;
        unguarded--;
      }
    },
  };
}

/** Anywhere: a timer and a signal per call. */
function perCall(timeoutMs: number): Deadlines {
  return {
    start(signal = true) {
      const d: Deadline = { controller: signal ? new AbortController() : null, timedOut: false, at: 0, unguarded: false };
      d.timer = setTimeout(() => {
        d.timedOut = true;
        d.controller?.abort();
        d.fail?.(timedOutError());
      }, timeoutMs);
      return d;
    },
    race: (p) => p,
    done(d) {
      clearTimeout(d.timer);
    },
    release() {},
  };
}

/** Node.js's own timers, not a runtime that ties timers to a request. */
function nodeTimers(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof proc?.versions?.node === "string" && !("EdgeRuntime" in globalThis);
}

export function deadlines(timeoutMs: number): Deadlines {
  return nodeTimers() ? sweeping(timeoutMs) : perCall(timeoutMs);
}
