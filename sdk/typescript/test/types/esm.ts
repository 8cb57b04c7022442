import express from "express";
import type { IncomingMessage } from "node:http";
import { NextRequest } from "next/server.js";
import {
  ERROR_CODES,
  ReauthError,
  createReauth,
  hasFeature,
  type ErrorCode,
  type ReauthSession,
  type ReauthUser,
} from "@reauth/sdk";
import { currentUser, getUserFromHeaders, reauthMiddleware } from "@reauth/sdk/next";
import { reauth, requireUser } from "@reauth/sdk/express";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

const client = createReauth({ url: "http://127.0.0.1:1", timeoutMs: 100, cache: { ttlMs: 1000 } });

export async function core(req: Request, msg: IncomingMessage): Promise<void> {
  const a = await client.getUser(req);
  const b = await client.getUser(msg);
  const c = await client.getUser("reauth_session=x");
  const d = await client.getUser(req.headers);
  assertType<Equal<typeof a | typeof b | typeof c | typeof d, ReauthUser | null>>();
  const u = await client.requireUser("tok");
  const end: Date | null = u.currentPeriodEnd;
  const exp: Date = u.session.expiresAt;
  const feats: string[] = u.features;
  void end, exp, feats;
  const s: ReauthSession | null = await client.getSession(req);
  void s;
  const url: string = client.loginUrl("https://app.example.com/x");
  void url;
  await client.logout(req);
  const ok: boolean = hasFeature(u, "pro") && client.hasFeature(null, "x");
  void ok;
  try {
    await client.requireUser(req);
  } catch (e) {
    if (e instanceof ReauthError) {
      const code: ErrorCode = e.code;
      const status: number = e.status;
      void code, status;
    }
  }
  const first: "unauthenticated" = ERROR_CODES[0];
  void first;
  // @ts-expect-error not a registry code
  const bad: ErrorCode = "nope";
  void bad;
}

export async function next(): Promise<void> {
  const mw = reauthMiddleware({ url: "http://127.0.0.1:1", protectedPaths: ["/dashboard", /^\/api\//] });
  const res = await mw(new NextRequest("http://localhost:3000/dashboard"));
  const status: number = res.status;
  void status;
  const u1: ReauthUser | null = getUserFromHeaders(new Headers());
  const u2: ReauthUser | null = currentUser(new Request("http://x"));
  void u1, u2;
}

export function expressApp(): void {
  const app = express();
  const auth = reauth({ url: "http://127.0.0.1:1" });
  app.use(auth);
  app.post("/logout", async (req, res) => {
    await auth.client.logout(req);
    res.redirect(303, "/");
  });
  app.get("/me", requireUser(), (req, res) => {
    // module augmentation: req.user is typed
    const user: ReauthUser | null | undefined = req.user;
    assertType<Equal<typeof req.user, ReauthUser | null | undefined>>();
    res.json({ email: user?.email });
  });
}
