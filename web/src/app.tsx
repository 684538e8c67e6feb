// The shell: who is signed in, the navigation their role allows, and the page for the path.
import { createContext } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import { api, type Me } from "./api";
import { match, navigate, usePath } from "./router";
import { ErrorNote, Link, Loading, Toasts } from "./ui";
import { SignIn, AcceptInvite } from "./pages/signin";
import { TraineeHome } from "./pages/home";
import { Practice } from "./pages/practice";
import { SessionReport } from "./pages/report";
import { Progress } from "./pages/progress";
import { Settings } from "./pages/settings";
import { ManagerOverview, TraineeDetail } from "./pages/manager";

// The manager's and admin's pages (their editors are most of the app) load when first opened.
type AdminPages = typeof import("./pages/admin");
let adminPages: Promise<AdminPages> | null = null;

function Admin(props: { page: keyof AdminPages }) {
  const [pages, setPages] = useState<AdminPages | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    adminPages ??= import("./pages/admin");
    adminPages.then(setPages, (err) => {
      adminPages = null; // the next visit tries again
      setError(err);
    });
  }, []);
  if (error) return <ErrorNote error={error} />;
  if (!pages) return <Loading />;
  const Page = pages[props.page];
  return <Page />;
}

export const MeContext = createContext<Me | null>(null);
export const useMe = () => useContext(MeContext)!;

export function homeFor(role: Me["role"]): string {
  return role === "admin" ? "/admin/people" : role === "manager" ? "/manager" : "/";
}

type Page = { pattern: string; roles?: Me["role"][]; render: (p: Record<string, string>) => preact.JSX.Element };

const PAGES: Page[] = [
  { pattern: "/", render: () => <TraineeHome /> },
  { pattern: "/practice/:id", render: (p) => <Practice sessionId={p.id} /> },
  { pattern: "/sessions/:id", render: (p) => <SessionReport sessionId={p.id} /> },
  { pattern: "/progress", render: () => <Progress /> },
  { pattern: "/settings", render: () => <Settings /> },
  { pattern: "/manager", roles: ["manager", "admin"], render: () => <ManagerOverview /> },
  { pattern: "/manager/trainees/:id", roles: ["manager", "admin"], render: (p) => <TraineeDetail userId={p.id} /> },
  { pattern: "/admin/people", roles: ["admin"], render: () => <Admin page="AdminPeople" /> },
  { pattern: "/admin/content", roles: ["admin", "manager"], render: () => <Admin page="AdminContent" /> },
  { pattern: "/admin/knowledge", roles: ["admin", "manager"], render: () => <Admin page="AdminKnowledge" /> },
  { pattern: "/admin/audit", roles: ["admin"], render: () => <Admin page="AdminAudit" /> },
];

const NAV: { to: string; label: string; roles: Me["role"][] }[] = [
  { to: "/", label: "Practice", roles: ["trainee", "manager", "admin"] },
  { to: "/progress", label: "My progress", roles: ["trainee", "manager", "admin"] },
  { to: "/settings", label: "Notifications", roles: ["trainee", "manager", "admin"] },
  { to: "/manager", label: "Team", roles: ["manager", "admin"] },
  { to: "/admin/people", label: "People", roles: ["admin"] },
  { to: "/admin/content", label: "Content", roles: ["manager", "admin"] },
  { to: "/admin/knowledge", label: "Knowledge", roles: ["manager", "admin"] },
  { to: "/admin/audit", label: "Audit log", roles: ["admin"] },
];

export function App() {
  const path = usePath();
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(api.hasSession);

  useEffect(() => {
    const off = api.onSessionChange((signedIn) => {
      if (!signedIn) setMe(null);
    });
    if (api.hasSession) {
      api
        .get<Me>("/v1/me")
        .then(setMe)
        .catch(() => api.forget())
        .finally(() => setChecking(false));
    }
    return off;
  }, []);

  useEffect(() => {
    document.getElementById("main")?.focus({ preventScroll: true });
  }, [path]);

  if (path === "/invite") return <Shell><AcceptInvite onSignedIn={setMe} /></Shell>;
  if (checking) return <Shell><Loading /></Shell>;
  if (!me) return <Shell><SignIn onSignedIn={setMe} /></Shell>;

  const found = PAGES.map((p) => ({ page: p, params: match(p.pattern, path) })).find((x) => x.params);
  let body: preact.JSX.Element;
  if (!found) {
    body = (
      <section>
        <h1>Page not found</h1>
        <p>
          <Link to={homeFor(me.role)}>Back to your start page</Link>
        </p>
      </section>
    );
  } else if (found.page.roles && !found.page.roles.includes(me.role)) {
    body = (
      <section class="refused" data-testid="refused">
        <h1>Not available to you</h1>
        <p>
          This page is for {found.page.roles.join(" and ")}s. You are signed in as a {me.role}; ask an admin if you need
          access.
        </p>
        <p>
          <Link to={homeFor(me.role)}>Back to your start page</Link>
        </p>
      </section>
    );
  } else {
    body = found.page.render(found.params!);
  }

  return (
    <MeContext.Provider value={me}>
      <Shell me={me} path={path}>
        {body}
      </Shell>
    </MeContext.Provider>
  );
}

function Shell(props: { me?: Me; path?: string; children: preact.ComponentChildren }) {
  const [open, setOpen] = useState(false);
  const me = props.me;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">SalesBoost</span>
        {me && (
          <>
            <button class="menu-toggle" aria-expanded={open} aria-controls="nav" onClick={() => setOpen(!open)}>
              Menu
            </button>
            <nav id="nav" aria-label="Main" class={open ? "open" : ""} onClick={() => setOpen(false)}>
              {NAV.filter((n) => n.roles.includes(me.role)).map((n) => (
                <Link key={n.to} to={n.to} aria-current={props.path === n.to ? "page" : undefined}>
                  {n.label}
                </Link>
              ))}
              <button
                class="link"
                onClick={async () => {
                  await api.logout();
                  navigate("/", true);
                }}
              >
                Sign out <span class="muted">({me.display_name})</span>
              </button>
            </nav>
          </>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {props.children}
      </main>
      <Toasts />
    </>
  );
}
