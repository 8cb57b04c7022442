// app/page.tsx — public: the proxy runs here too, so the user is known when signed in.
import { headers } from "next/headers";
import { getUserFromHeaders } from "@reauth/sdk/next";

export default async function Home() {
  const user = getUserFromHeaders(await headers());
  return (
    <main>
      <h1>Home</h1>
      <p>{user ? `Signed in as ${user.email}` : "Not signed in"}</p>
      <a href="/dashboard">Dashboard</a>
    </main>
  );
}
