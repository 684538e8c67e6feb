// Sign in (company, e-mail, password) and accepting an invitation (the link sets the password).
import { useState } from "preact/hooks";
import { api, type Me } from "../api";
import { navigate } from "../router";
import { ErrorNote } from "../ui";
import { homeFor } from "../app";

const COMPANY_KEY = "salesboost.company";

export function SignIn(props: { onSignedIn: (me: Me) => void }) {
  const [company, setCompany] = useState(localStorage.getItem(COMPANY_KEY) ?? "");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.login(company.trim(), email.trim(), password);
      localStorage.setItem(COMPANY_KEY, company.trim());
      const me = await api.get<Me>("/v1/me");
      props.onSignedIn(me);
      const here = location.pathname.replace(/^\/app/, "") || "/";
      if (here === "/" || here === "/invite") navigate(homeFor(me.role), true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="narrow">
      <h1>Sign in</h1>
      <form onSubmit={submit} class="stack">
        <label>
          Company
          <input name="company" autoComplete="organization" required value={company} onInput={(e) => setCompany(e.currentTarget.value)} />
        </label>
        <label>
          E-mail
          <input name="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <ErrorNote error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </section>
  );
}

/** ``/app/invite#token=...``: the token stays in the fragment, which no server log sees. */
export function AcceptInvite(props: { onSignedIn: (me: Me) => void }) {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
  const [password, setPassword] = useState("");
  const [again, setAgain] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const mismatch = again.length > 0 && again !== password;

  async function submit(event: Event) {
    event.preventDefault();
    if (password !== again) return;
    setBusy(true);
    setError(null);
    try {
      await api.acceptInvite(token, password);
      history.replaceState(null, "", location.pathname); // the token is spent; drop it
      const me = await api.get<Me>("/v1/me");
      props.onSignedIn(me);
      navigate(homeFor(me.role), true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="narrow">
      <h1>Welcome to SalesBoost</h1>
      {!token ? (
        <p class="error" role="alert">
          This invitation link is incomplete. Open the whole link you were sent.
        </p>
      ) : (
        <form onSubmit={submit} class="stack">
          <p>Choose a password (at least 12 characters) to finish setting up your account.</p>
          <label>
            New password
            <input
              name="new-password"
              type="password"
              autoComplete="new-password"
              minLength={12}
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <label>
            The same password again
            <input
              name="confirm-password"
              type="password"
              autoComplete="new-password"
              required
              aria-invalid={mismatch}
              aria-describedby={mismatch ? "pw-mismatch" : undefined}
              value={again}
              onInput={(e) => setAgain(e.currentTarget.value)}
            />
          </label>
          {mismatch && (
            <p id="pw-mismatch" class="error">
              The two passwords differ.
            </p>
          )}
          <ErrorNote error={error} />
          <button type="submit" class="primary" disabled={busy || mismatch}>
            {busy ? "Setting up…" : "Set password and sign in"}
          </button>
        </form>
      )}
    </section>
  );
}
