// app/logout/route.ts — revoke the session, clear the cookie, go home.
import { NextResponse } from "next/server";
import { createReauth } from "@reauth/sdk";

const reauth = createReauth({ url: process.env.REAUTH_URL! });

export async function POST(request: Request) {
  await reauth.logout(request); // POST /v1/logout with the request's session token
  // A new response: the headers of Response.redirect() are immutable.
  const res = NextResponse.redirect(new URL("/", request.url), 303);
  // Clears the cookie where the app shares the auth server's host name (localhost in dev)
  // or, with REAUTH_COOKIE_DOMAIN=example.com, the cookie of a custom auth domain.
  res.cookies.set("reauth_session", "", {
    path: "/",
    maxAge: 0,
    httpOnly: true,
    sameSite: "lax",
    domain: process.env.REAUTH_COOKIE_DOMAIN,
  });
  return res;
}
