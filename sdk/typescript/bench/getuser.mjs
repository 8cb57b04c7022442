#!/usr/bin/env node
// Benchmark: getUser() against a warm `reauth dev` server, next to a bare
// fetch of GET /healthz at the same concurrency in the same run.
//
//   npm run bench                       # 32 in flight, 5 s per row
//   node bench/getuser.mjs --concurrency 64 --duration 10 --out /tmp/sdk.md
//
// Bounded: each slice stops after its share of --duration or --max-requests requests,
// whichever comes first. Traffic goes to 127.0.0.1 only. Writes a markdown
// table to ../../benches/results/sdk.md (relative to sdk/typescript) unless --out.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createReauth } from "../dist/esm/index.js";
import { login, startServer } from "../test/support/server.mjs";

const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    concurrency: { type: "string", default: "32" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    rounds: { type: "string", default: "10" },
    "max-requests": { type: "string", default: "2000000" },
    out: { type: "string", default: resolve(SDK_DIR, "..", "..", "benches", "results", "sdk.md") },
  },
});
const CONCURRENCY = Number(args.concurrency);
const DURATION_S = Number(args.duration);
const WARMUP_S = Number(args.warmup);
const MAX_REQUESTS = Number(args["max-requests"]);
const ROUNDS = Math.max(1, Number(args.rounds));

/** Run `op` with CONCURRENCY workers for `seconds` (bounded by MAX_REQUESTS); raw samples. */
async function run(op, seconds, acc = { latencies: [], elapsed: 0, cpuUs: 0 }) {
  let started = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end && started < MAX_REQUESTS) {
      started++;
      const s = performance.now();
      await op();
      acc.latencies.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  acc.elapsed += (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  acc.cpuUs = (acc.cpuUs ?? 0) + cpu.user + cpu.system;
  return acc;
}

function summarize({ latencies, elapsed, cpuUs }) {
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  return { count: latencies.length, elapsed, rps: latencies.length / elapsed, p50: pct(50), p99: pct(99), cpu: cpuUs / latencies.length };
}

const loadBefore = loadavg()[0];
const server = await startServer();
try {
  const session = await login(server.url, "bench@example.com");
  const reauth = createReauth({ url: server.url });
  const cached = createReauth({ url: server.url, cache: { ttlMs: 5000 } });
  // The same client on the global fetch (what edge runtimes and older Node.js use).
  const viaFetch = createReauth({ url: server.url, fetch: (url, init) => fetch(url, init) });
  const healthz = async () => {
    const res = await fetch(`${server.url}/healthz`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET /healthz answered ${res.status}`);
  };
  const getUser = async () => {
    const user = await reauth.getUser(session.token);
    if (!user) throw new Error("getUser() returned null during the benchmark");
  };
  const getUserFetch = async () => {
    const user = await viaFetch.getUser(session.token);
    if (!user) throw new Error("getUser() returned null during the benchmark");
  };
  const getUserCached = async () => {
    const user = await cached.getUser(session.token);
    if (!user) throw new Error("getUser() returned null during the benchmark");
  };

  await run(healthz, WARMUP_S);
  await run(getUser, WARMUP_S);
  await run(getUserFetch, WARMUP_S);
  await run(getUserCached, Math.min(WARMUP_S, 0.2));
  // Interleave the rows in ROUNDS slices so drifting background load hits them alike.
  const acc = [healthz, getUser, getUserCached, getUserFetch].map(() => ({ latencies: [], elapsed: 0, cpuUs: 0 }));
  // Each round also gives a paired ratio (getUser / bare fetch in adjacent slices); their median
  // is what bursts of other work on the machine disturb least.
  const paired = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [h0, u0] = [acc[0].latencies.length, acc[1].latencies.length];
    const [he0, ue0] = [acc[0].elapsed, acc[1].elapsed];
    // ABBA order, so what a slice leaves behind (garbage, warm caches) falls on both rows alike.
    if (round % 2 === 0) {
      await run(healthz, DURATION_S / ROUNDS, acc[0]);
      await run(getUser, DURATION_S / ROUNDS, acc[1]);
    } else {
      await run(getUser, DURATION_S / ROUNDS, acc[1]);
      await run(healthz, DURATION_S / ROUNDS, acc[0]);
    }
    await run(getUserFetch, DURATION_S / ROUNDS, acc[3]);
    await run(getUserCached, DURATION_S / ROUNDS, acc[2]);
    const h = (acc[0].latencies.length - h0) / (acc[0].elapsed - he0);
    const u = (acc[1].latencies.length - u0) / (acc[1].elapsed - ue0);
    paired.push(u / h);
  }
  paired.sort((a, b) => a - b);
  const medianPaired = paired[Math.floor(paired.length / 2)];
  const rows = [
    ["bare `fetch` GET /healthz", summarize(acc[0])],
    ["`getUser(token)` (GET /v1/user)", summarize(acc[1])],
    ["`getUser(token)` with `cache: { ttlMs: 5000 }`", summarize(acc[2])],
    ["`getUser(token)` through `fetch` (option `fetch`)", summarize(acc[3])],
  ];

  const loadAfter = loadavg()[0];
  const ratio = rows[1][1].rps / rows[0][1].rps;
  let commit = "n/a";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: SDK_DIR, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    /* no commits yet */
  }
  const fmt = (n, d = 0) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  const md = `# SDK benchmark: \`getUser()\` vs bare \`fetch\`

TypeScript SDK (\`@reauth/sdk\`) calling a warm local \`reauth dev\` server over loopback HTTP/1.1.

| | |
| --- | --- |
| machine | ${cpus().length} cores (\`nproc\` = ${execFileSync("nproc").toString().trim()}), ${cpus()[0]?.model ?? "?"} |
| node | ${process.version} (global \`fetch\` = undici) |
| server | \`${relative(resolve(SDK_DIR, "..", ".."), server.bin).startsWith("..") ? server.bin : relative(resolve(SDK_DIR, "..", ".."), server.bin)}\` (${/[\\/]release[\\/]/.test(server.bin) ? "release" : "debug"} build) — \`dev --listen 127.0.0.1:PORT --data-dir <tmp>\`, same machine |
| 1-min load average | ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (other work on the machine skews the figures) |
| command | \`cd sdk/typescript && npm run bench\` (\`node bench/getuser.mjs --concurrency ${CONCURRENCY} --duration ${DURATION_S}\`) |
| load | ${CONCURRENCY} requests in flight, ${DURATION_S} s per row (interleaved in ${ROUNDS} slices) after ${WARMUP_S} s warm-up, one logged-in session |
| commit | ${commit} |
| date | ${new Date().toISOString()} |

| operation | requests | calls/s | p50 (ms) | p99 (ms) | client CPU per call (µs) |
| --- | ---: | ---: | ---: | ---: | ---: |
${rows.map(([name, r]) => `| ${name} | ${fmt(r.count)} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.cpu)} |`).join("\n")}

**Ratio** \`getUser()\` / bare \`fetch /healthz\` throughput: **${ratio.toFixed(2)}×** (p50 ${(rows[1][1].p50 / rows[0][1].p50).toFixed(2)}×);
median of the ${ROUNDS} per-slice ratios ${medianPaired.toFixed(2)}× (range ${paired[0].toFixed(2)}–${paired[paired.length - 1].toFixed(2)}).
Through the global \`fetch\` instead of \`node:http\` (edge runtimes, Node.js before 20.16, a \`fetch\` in the options): ${(rows[3][1].rps / rows[0][1].rps).toFixed(2)}×.
The cached call: p50 ${(rows[2][1].p50 * 1000).toFixed(0)} µs under the same ${CONCURRENCY}-way load, ${(rows[2][1].rps / rows[0][1].rps).toFixed(1)}× the bare \`fetch\` throughput.
With the in-process cache the call is served from memory (SHA-256 of the token + map lookup) and does not reach the server while the entry is fresh.

Client CPU per call is this Node.js process's user + system time over the calls it completed (the
benchmark's own loop included, alike for every row); it moves less with other work on the machine
than throughput does. Client and server share the same ${cpus().length} cores, so the figures are a floor for both. The server
binary is whichever the test harness found (a debug build unless \`REAUTH_BIN\` points at a release build).
`;
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, md);
  console.log(md);
  console.log(`wrote ${args.out}`);
} finally {
  await server.stop();
}
