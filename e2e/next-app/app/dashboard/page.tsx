// app/dashboard/page.tsx — protected: the proxy sends signed-out visitors to the login page.
import { headers } from "next/headers";
import { getUserFromHeaders } from "@reauth/sdk/next";

export default async function Dashboard() {
  const user = getUserFromHeaders(await headers());
  if (!user) return <p>Not signed in</p>; // only when the proxy did not run (see its matcher)
  return (
    <main>
      <h1>Dashboard</h1>
      <p>
        Signed in as <strong id="email">{user.email}</strong> on the <strong id="plan">{user.plan}</strong> plan.
      </p>
      <form action="/logout" method="post">
        <button type="submit">Sign out</button>
      </form>
    </main>
  );
}
