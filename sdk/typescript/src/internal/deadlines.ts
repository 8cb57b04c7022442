/**
 * Per-call timeouts. On Node.js one coarse timer per client watches every call in flight
 * instead of a `setTimeout` + `clearTimeout` pair (and a closure) per call, which was a
 * measurable share of a `getUser()` under load (bench/getuser.mjs); a call is aborted between
 * `timeoutMs` and `timeoutMs + tick` after it started, and the timer runs only while calls are
 * in flight. Elsewhere (edge runtimes, Workers: timers there may belong to the request that set
 * them) each call keeps its own timer.
 */
export interface Deadline {
  readonly controller: AbortController;
  /** True once the deadline passed and the call was aborted. */
  timedOut: boolean;
  /** Node.js: when the call is due; per-call timers: the timer. */
  at: number;
  timer?: ReturnType<typeof setTimeout>;
}

export interface Deadlines {
  start(): Deadline;
  /** The call finished (or failed): stop watching it. */
  done(d: Deadline): void;
}

/** Node.js: one shared sweeper. */
function sweeping(timeoutMs: number): Deadlines {
  const tick = Math.max(1, Math.min(100, Math.ceil(timeoutMs / 10)));
  // The same timeout for every call: insertion order is deadline order, so a sweep stops at the
  // first call still in time.
  const pending = new Set<Deadline>();
  let timer: ReturnType<typeof setInterval> | null = null;
  const sweep = () => {
    const now = Date.now();
    for (const d of pending) {
      if (d.at > now) break;
      pending.delete(d);
      d.timedOut = true;
      d.controller.abort();
    }
    if (pending.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
  return {
    start() {
      const d: Deadline = { controller: new AbortController(), timedOut: false, at: Date.now() + timeoutMs };
      pending.add(d);
      if (timer === null) {
        timer = setInterval(sweep, tick);
        // Never keep a process alive just to watch calls.
        (timer as { unref?: () => void }).unref?.();
      }
      return d;
    },
    done(d) {
      pending.delete(d);
    },
  };
}

/** Anywhere: a timer per call. */
function perCall(timeoutMs: number): Deadlines {
  return {
    start() {
      const d: Deadline = { controller: new AbortController(), timedOut: false, at: 0 };
      d.timer = setTimeout(() => {
        d.timedOut = true;
        d.controller.abort();
      }, timeoutMs);
      return d;
    },
    done(d) {
      clearTimeout(d.timer);
    },
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
