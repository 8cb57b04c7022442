/**
 * On Node.js, calls go through `node:http` / `node:https` with a keep-alive agent per client
 * rather than the global `fetch`: undici's `fetch` spends about four times as much CPU on a small
 * request (WHATWG streams, `Request`/`Response`/`Headers` objects, an `AbortSignal` per request),
 * which made `getUser()` slower than the bare `fetch` it replaces (bench/getuser.mjs).
 *
 * The module is taken with `process.getBuiltinModule` (Node.js 20.16+ / 22.3+), never imported,
 * so bundlers for edge runtimes see no Node built-in; where it is missing (edge runtimes,
 * Workers, older Node.js) or a `fetch` is passed in the options, the client uses `fetch`.
 */
export interface Answer {
  status: number;
  text: string;
}

/** Starts a call; `cancel(err)` ends it (the deadline), and the promise rejects with `err`. */
export type NodeTransport = (
  method: "GET" | "POST",
  path: string,
  token: string,
  onCancel: (cancel: (err: Error) => void) => void,
) => Promise<Answer>;

interface IncomingLike {
  statusCode?: number;
  complete: boolean;
  setEncoding(enc: string): void;
  on(event: string, fn: (arg?: unknown) => void): void;
}
interface RequestLike {
  reusedSocket: boolean;
  on(event: string, fn: (err: NodeJS_Error) => void): void;
  end(): void;
  destroy(err?: Error): void;
}
type NodeJS_Error = Error & { code?: string };
interface HttpModule {
  Agent: new (options: { keepAlive: boolean }) => unknown;
  request(
    options: { agent: unknown; host: string; port: string; path: string; method: string; headers: Record<string, string> },
    onResponse: (res: IncomingLike) => void,
  ): RequestLike;
}

export function nodeTransport(base: string): NodeTransport | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (typeof proc?.getBuiltinModule !== "function" || "EdgeRuntime" in globalThis) return null;
  const url = new URL(base);
  const mod = proc.getBuiltinModule(url.protocol === "https:" ? "node:https" : "node:http") as HttpModule | undefined;
  if (!mod || typeof mod.request !== "function") return null;
  const agent = new mod.Agent({ keepAlive: true });
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1"); // IPv6 literal without brackets
  const port = url.port;
  const prefix = url.pathname.replace(/\/+$/, "");

  const once = (method: "GET" | "POST", path: string, token: string, onCancel: (cancel: (err: Error) => void) => void) =>
    new Promise<Answer & { reused: boolean }>((resolve, reject) => {
      const req = mod.request(
        {
          agent,
          host,
          port,
          path: prefix + path,
          method,
          headers: { authorization: `Bearer ${token}`, accept: "application/json" },
        },
        (res) => {
          res.setEncoding("utf8");
          let text = "";
          res.on("data", (chunk) => {
            text += chunk as string;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text, reused: req.reusedSocket }));
          res.on("error", (err) => reject(err));
          res.on("close", () => {
            if (!res.complete) reject(new Error("the connection closed before the answer was complete"));
          });
        },
      );
      req.on("error", (err) => {
        (err as { reused?: boolean }).reused = req.reusedSocket;
        reject(err);
      });
      onCancel((err) => req.destroy(err));
      req.end();
    });

  return async (method, path, token, onCancel) => {
    try {
      return await once(method, path, token, onCancel);
    } catch (err) {
      // A kept-alive connection the server closed just as it was reused: try once more on a
      // fresh one (both calls are idempotent: reads, and revoking a session).
      const e = err as NodeJS_Error & { reused?: boolean };
      if (e.reused && (e.code === "ECONNRESET" || e.code === "EPIPE")) return once(method, path, token, onCancel);
      throw err;
    }
  };
}
