// The README's file snippets are the e2e apps' files: every fenced block with a title
// (```ts title="next-app/proxy.ts") must equal e2e/<title> byte for byte, so the docs cannot
// drift from the apps the browser tests build and drive (e2e/sdk-apps.test.mjs).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const E2E = resolve(ROOT, "..", "..", "e2e");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** [{ lang, title, body }] of the README's fenced blocks that carry a title. */
function titledBlocks(md) {
  const out = [];
  const re = /^```(\w*)[ \t]+title="([^"]+)"[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m; (m = re.exec(md)); ) out.push({ lang: m[1], title: m[2], body: m[3] });
  return out;
}

describe("README", () => {
  const blocks = titledBlocks(README);

  it("shows the apps' key files", () => {
    const titles = blocks.map((b) => b.title);
    for (const f of [
      "next-app/.env.local",
      "next-app/proxy.ts",
      "next-app/edge/middleware.ts",
      "next-app/app/dashboard/page.tsx",
      "next-app/app/api/me/route.ts",
      "next-app/app/logout/route.ts",
      "express-app/server.ts",
    ]) {
      assert.ok(titles.includes(f), `no \`\`\`… title="${f}" block in README.md (has: ${titles.join(", ")})`);
    }
  });

  for (const b of blocks) {
    it(`"${b.title}" is e2e/${b.title}`, () => {
      const file = join(E2E, b.title);
      assert.ok(existsSync(file), `README.md shows ${b.title}, but e2e/${b.title} does not exist`);
      assert.equal(b.body, readFileSync(file, "utf8"), `README.md's ${b.title} differs from e2e/${b.title}: copy the file into the README`);
    });
  }

  it("never builds a redirect with Response.redirect() and then appends to its headers", () => {
    // Its headers are immutable: `res.headers.append("set-cookie", ...)` throws (TypeError: immutable).
    assert.doesNotMatch(README, /Response\.redirect\([^)]*\)[^`]*?\.headers\.(append|set)\(/s);
  });
});
