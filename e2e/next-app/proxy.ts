// proxy.ts — Next.js 16+ runs this file in the Node.js runtime.
import { reauthMiddleware } from "@reauth/sdk/next";

export const proxy = reauthMiddleware({
  url: process.env.REAUTH_URL!, // from .env.local: REAUTH_URL=http://localhost:8080
  protectedPaths: ["/dashboard"], // signed out there → the hosted login, then back
});

export const config = {
  // Everything but static assets, so the user header is always set (and never spoofed).
  matcher: ["/((?!_next/static|_next/image|favicon.ico).*)"],
};
