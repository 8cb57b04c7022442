// Packaging: export map (ESM + CJS), zero runtime deps, error-code registry
// format, and no Node builtins in the edge-facing modules.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

describe("package", () => {
  it("has zero runtime dependencies; next is an optional peer and a devDependency", () => {
    assert.equal(pkg.dependencies, undefined);
    assert.ok(pkg.peerDependencies.next);
    assert.equal(pkg.peerDependenciesMeta.next.optional, true);
    assert.ok(pkg.devDependencies.next);
  });

  for (const sub of ["", "/next", "/express"]) {
    it(`@reauth/sdk${sub} loads as ESM and CJS with the same exports`, async () => {
      const esm = await import(`@reauth/sdk${sub}`);
      const cjs = require(`@reauth/sdk${sub}`);
      const names = (m) => Object.keys(m).filter((k) => k !== "default" && k !== "__esModule").sort();
      assert.deepEqual(names(esm), names(cjs));
      assert.ok(names(esm).length > 0);
      assert.ok(require.resolve(`@reauth/sdk${sub}`).includes(`${join("dist", "cjs")}`));
    });
  }

  it("exposes createReauth and ReauthError from both builds", async () => {
    const esm = await import("@reauth/sdk");
    const cjs = require("@reauth/sdk");
    for (const m of [esm, cjs]) {
      assert.equal(typeof m.createReauth, "function");
      const e = new m.ReauthError("unauthenticated", "x", 401);
      assert.ok(e instanceof Error && e instanceof m.ReauthError);
      assert.equal(e.code, "unauthenticated");
    }
  });

  it("error-codes.ts has one quoted code per line, matching ERROR_CODES", async () => {
    const src = readFileSync(join(ROOT, "src", "error-codes.ts"), "utf8");
    const m = /export const ERROR_CODES = \[\n([\s\S]*?)\n\] as const;\nexport type ErrorCode = \(typeof ERROR_CODES\)\[number\];/.exec(src);
    assert.ok(m, "registry block has the expected form");
    const lines = m[1].split("\n");
    const parsed = lines.map((l) => {
      const lm = /^ {2}"([a-z_]+)",$/.exec(l);
      assert.ok(lm, `line is one quoted code: ${JSON.stringify(l)}`);
      return lm[1];
    });
    const { ERROR_CODES } = await import("@reauth/sdk");
    assert.deepEqual(parsed, [...ERROR_CODES]);
    assert.equal(new Set(parsed).size, parsed.length, "no duplicates");
    for (const c of ["unauthenticated", "unavailable", "timeout", "internal"]) assert.ok(parsed.includes(c));
  });

  it("core and next modules import no Node builtins (edge-compatible)", () => {
    const builtins = new Set(require("node:module").builtinModules);
    const seen = new Set();
    const visit = (file) => {
      if (seen.has(file)) return;
      seen.add(file);
      const code = readFileSync(file, "utf8");
      for (const [, spec] of code.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) {
        assert.ok(!spec.startsWith("node:") && !builtins.has(spec.split("/")[0]), `${file} imports ${spec}`);
        if (spec.startsWith(".")) visit(resolve(dirname(file), spec));
        else assert.ok(spec === "next/server.js", `${file} imports a runtime dependency: ${spec}`);
      }
      const bare = code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
      const m = /\bBuffer\b|\bprocess\.|\brequire\(|\b__dirname\b|\bsetImmediate\b/.exec(bare);
      assert.equal(m, null, `${file} uses a Node-only global: ${m?.[0]}`);
    };
    visit(join(ROOT, "dist", "esm", "index.js"));
    visit(join(ROOT, "dist", "esm", "next.js"));
    assert.ok(seen.size >= 6);
  });
});
