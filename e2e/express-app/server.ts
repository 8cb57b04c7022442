// server.ts — an Express app protected by reauth (npm run build && REAUTH_URL=http://localhost:8080 npm start).
import express, { type ErrorRequestHandler } from "express";
import { reauth, requireUser } from "@reauth/sdk/express";

const app = express();
const auth = reauth({ url: process.env.REAUTH_URL! }); // e.g. http://localhost:8080 (reauth dev)
app.use(auth); // sets req.user: ReauthUser | null

const html = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

app.get("/", (req, res) => {
  res.send(`<h1>Home</h1><p>${req.user ? `Signed in as ${html(req.user.email)}` : "Not signed in"}</p>`);
});

// Signed out → browsers get a 302 to the hosted login (redirect_to = this URL), API clients a 401.
app.get("/dashboard", requireUser(), (req, res) => {
  const user = req.user!;
  res.send(`<h1>Dashboard</h1>
<p>Signed in as <strong id="email">${html(user.email)}</strong> on the <strong id="plan">${html(user.plan)}</strong> plan.</p>
<form action="/logout" method="post"><button type="submit">Sign out</button></form>`);
});

app.get("/api/me", requireUser(), (req, res) => {
  res.json({ id: req.user!.id, email: req.user!.email, plan: req.user!.plan, features: req.user!.features });
});

app.post("/logout", async (req, res) => {
  await auth.client.logout(req); // POST /v1/logout with the request's session token
  // Clears the cookie where the app shares the auth server's host name (localhost in dev)
  // or, with REAUTH_COOKIE_DOMAIN=example.com, the cookie of a custom auth domain.
  res.clearCookie("reauth_session", {
    path: "/",
    httpOnly: true,
    sameSite: "lax",
    domain: process.env.REAUTH_COOKIE_DOMAIN,
  });
  res.redirect(303, "/");
});

// Auth-server failures reach the error handler as ReauthError (status 503 / 504).
const onError: ErrorRequestHandler = (err, _req, res, _next) => {
  res.status(err.status ?? 500).json({ error: { code: err.code ?? "internal" } });
};
app.use(onError);

const port = Number(process.env.PORT ?? 3000);
app.listen(port, "localhost", () => console.log(`listening on http://localhost:${port}`));
