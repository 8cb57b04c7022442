import type { ReauthCacheOptions, ReauthUser } from "../types.js";
import { cloneUser } from "./wire.js";

interface Entry {
  user: ReauthUser;
  expiresAt: number;
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

interface NodeCrypto {
  createHash(alg: "sha256"): { update(data: string): { digest(enc: "hex"): string } };
}

// Node.js: the synchronous `node:crypto` hash (a cache hit then needs no trip through the thread
// pool that WebCrypto's digest takes); taken with `process.getBuiltinModule`, so edge bundlers
// never see it. Elsewhere: WebCrypto.
const nodeCrypto: NodeCrypto | undefined = (() => {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (typeof proc?.getBuiltinModule !== "function" || "EdgeRuntime" in globalThis) return undefined;
  const mod = proc.getBuiltinModule("node:crypto") as NodeCrypto | undefined;
  return typeof mod?.createHash === "function" ? mod : undefined;
})();

/** SHA-256 of the token (hex), so raw tokens are never kept in memory as keys. */
export async function tokenKey(token: string): Promise<string> {
  if (nodeCrypto) return nodeCrypto.createHash("sha256").update(token).digest("hex");
  const digest = new Uint8Array(
    await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)),
  );
  let out = "";
  for (const b of digest) out += HEX[b];
  return out;
}

/**
 * In-process TTL cache of user views. An entry lives at most `ttlMs` and
 * never past the session's expiry; Map insertion order gives FIFO eviction.
 */
export class UserCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  /** Bumped on every delete, so a fetch that raced a logout doesn't re-insert its answer. */
  private generation = 0;

  constructor(options: ReauthCacheOptions) {
    if (!(typeof options.ttlMs === "number" && options.ttlMs > 0 && Number.isFinite(options.ttlMs))) {
      throw new TypeError("reauth: cache.ttlMs must be a positive, finite number of milliseconds");
    }
    const max = options.maxEntries ?? 10_000;
    if (!(Number.isInteger(max) && max > 0)) {
      throw new TypeError("reauth: cache.maxEntries must be a positive integer");
    }
    if (typeof globalThis.crypto?.subtle?.digest !== "function") {
      throw new TypeError("reauth: the cache needs WebCrypto (globalThis.crypto.subtle)");
    }
    this.ttlMs = options.ttlMs;
    this.maxEntries = max;
  }

  get(key: string, now: number = Date.now()): ReauthUser | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return cloneUser(entry.user);
  }

  /** Current generation; pass it back to {@link set}. */
  get currentGeneration(): number {
    return this.generation;
  }

  set(key: string, user: ReauthUser, generation: number, now: number = Date.now()): void {
    if (generation !== this.generation) return;
    const expiresAt = Math.min(now + this.ttlMs, user.session.expiresAt.getTime());
    if (expiresAt <= now) return;
    this.entries.delete(key);
    this.entries.set(key, { user: cloneUser(user), expiresAt });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.generation++;
    this.entries.delete(key);
  }

  clear(): void {
    this.generation++;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
