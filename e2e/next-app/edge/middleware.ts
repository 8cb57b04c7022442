// middleware.ts — runs in the edge runtime (deprecated on Next.js 16 in favour of proxy.ts, still works).
import { reauthMiddleware } from "@reauth/sdk/next";

export const middleware = reauthMiddleware({
  url: process.env.REAUTH_URL!, // from .env.local: REAUTH_URL=http://localhost:8080
  protectedPaths: ["/dashboard"], // signed out there → the hosted login, then back
});

export const config = {
  // Everything but static assets, so the user header is always set (and never spoofed).
  matcher: ["/((?!_next/static|_next/image|favicon.ico).*)"],
};
