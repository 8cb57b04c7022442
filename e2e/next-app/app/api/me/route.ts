// app/api/me/route.ts — a route handler: the user the proxy resolved, as JSON.
import { currentUser } from "@reauth/sdk/next";

export async function GET(request: Request) {
  const user = currentUser(request); // ReauthUser | null, from the proxy's x-reauth-user header
  if (!user) {
    return Response.json({ error: { code: "unauthenticated", message: "Sign in first" } }, { status: 401 });
  }
  return Response.json({ id: user.id, email: user.email, plan: user.plan, features: user.features });
}
