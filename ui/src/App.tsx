// The shell: sign-in, navigation and a hash router (#/tenants,
// #/integrations/orders, ...), so every page has a URL that survives a
// reload and the server needs only one index.html.
import { useEffect, useMemo, useState } from "react";
import { ApiError, Client, loadSession, saveSession, type Session, type Tenant } from "./api";
import { Button, ErrorBox, Field, cls, inputCls } from "./ui";
import Tenants from "./pages/Tenants";
import Integrations from "./pages/Integrations";
import Wizard from "./pages/Wizard";
import Monitor from "./pages/Monitor";
import Marketplace from "./pages/Marketplace";

function useHash(): string[] {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const on = () => setHash(window.location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

export function go(path: string) {
  window.location.hash = "#/" + path;
}

export default function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const route = useHash();
  const client = useMemo(() => (session ? new Client(session) : null), [session]);

  const update = (s: Session | null) => {
    saveSession(s);
    setSession(s);
  };

  if (!session || !client) return <SignIn onSignIn={update} />;

  const [page = session.admin ? "tenants" : "integrations", arg, sub] = route;
  let body;
  switch (page) {
    case "tenants":
      body = session.admin ? <Tenants client={client} selected={arg} /> : <Tenants client={client} selected={session.tenant} />;
      break;
    case "integrations":
      if (arg === "new") body = <Wizard client={client} />;
      else if (arg && sub === "edit") body = <Wizard client={client} edit={arg} />;
      else if (arg) body = <Monitor client={client} name={arg} />;
      else body = <Integrations client={client} />;
      break;
    case "marketplace":
      body = <Marketplace client={client} selected={arg} />;
      break;
    default:
      body = <p>Nothing here. Pick a page above.</p>;
  }
  const needsTenant = page === "integrations" && session.admin && !session.tenant;

  return (
    <div className="min-h-screen">
      <header className="bg-slate-900 text-white">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-3 py-2">
          <a href="#/" className="text-lg font-bold tracking-tight">
            VRSky
          </a>
          <nav aria-label="Main" className="flex flex-wrap gap-1 text-sm">
            {session.admin && <NavLink to="tenants" page={page} label="Tenants" />}
            {!session.admin && <NavLink to="tenants" page={page} label="My tenant" />}
            <NavLink to="integrations" page={page} label="Integrations" />
            <NavLink to="marketplace" page={page} label="Marketplace" />
          </nav>
          <div className="ml-auto flex flex-wrap items-center gap-2 text-sm">
            {session.admin ? <TenantPicker client={client} session={session} onChange={update} /> : <span data-testid="whoami">tenant {session.tenant || "(unknown)"}</span>}
            <Button onClick={() => update(null)}>Sign out</Button>
          </div>
        </div>
      </header>
      <main className="mx-auto max-w-6xl px-3 py-4">
        {needsTenant ? <p className="rounded border border-amber-300 bg-amber-50 p-3 text-sm">The admin key sees every tenant: choose the tenant to work on in the header.</p> : body}
      </main>
    </div>
  );
}

function NavLink({ to, page, label }: { to: string; page: string; label: string }) {
  const active = page === to;
  return (
    <a href={"#/" + to} aria-current={active ? "page" : undefined} className={cls("rounded px-2 py-1", active ? "bg-sky-700" : "hover:bg-slate-700")}>
      {label}
    </a>
  );
}

// TenantPicker chooses the tenant the admin's integration calls act on.
function TenantPicker({ client, session, onChange }: { client: Client; session: Session; onChange: (s: Session) => void }) {
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    client.call<{ tenants: Tenant[] }>("/tenants").then((r) => setTenants(r.tenants), () => setTenants([]));
  }, [client, tick]);
  useEffect(() => {
    const on = () => setTick((n) => n + 1);
    window.addEventListener("vrsky:tenants-changed", on);
    return () => window.removeEventListener("vrsky:tenants-changed", on);
  }, []);
  return (
    <label className="flex items-center gap-1">
      <span>Tenant</span>
      <select aria-label="Tenant to work on" className="rounded bg-slate-800 px-1 py-1 text-white" value={session.tenant} onChange={(e) => onChange({ ...session, tenant: e.target.value })}>
        <option value="">(none)</option>
        {tenants.map((t) => (
          <option key={t.name} value={t.name}>
            {t.name}
          </option>
        ))}
      </select>
    </label>
  );
}

function SignIn({ onSignIn }: { onSignIn: (s: Session) => void }) {
  const [key, setKey] = useState("");
  const [tenant, setTenant] = useState("");
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    const s: Session = { key: key.trim(), admin: false, tenant: tenant.trim() };
    const c = new Client(s);
    try {
      // The admin key lists tenants; a tenant key is refused (403).
      try {
        await c.call("/tenants");
        s.admin = true;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 403) throw e;
        if (s.tenant) {
          await c.call(`/tenants/${encodeURIComponent(s.tenant)}`);
        } else {
          // No name given: learn it from the tenant's integrations, if any.
          const r = await c.call<{ integrations: { tenant: string }[] }>("/integrations");
          s.tenant = r.integrations[0]?.tenant ?? "";
        }
      }
      onSignIn(s);
      window.location.hash = s.admin ? "#/tenants" : "#/integrations";
    } catch (e) {
      setErr(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="flex min-h-screen items-center justify-center p-3">
      <form onSubmit={submit} className="w-full max-w-md rounded-lg border border-slate-200 bg-white p-6 shadow">
        <h1 className="mb-1 text-2xl font-bold">VRSky</h1>
        <p className="mb-4 text-sm text-slate-600">Sign in with an API key: the admin key, or a tenant's key. It is kept in this tab's session storage only.</p>
        <Field label="API key" htmlFor="signin-key">
          <input id="signin-key" className={inputCls} type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} required />
        </Field>
        <Field label="Tenant (optional)" htmlFor="signin-tenant" help="For a tenant key: the tenant's name, shown in webhook URLs and on the tenant's page.">
          <input id="signin-tenant" className={inputCls} value={tenant} onChange={(e) => setTenant(e.target.value)} />
        </Field>
        <ErrorBox error={err} />
        <Button type="submit" variant="primary" disabled={busy || !key}>
          Sign in
        </Button>
      </form>
    </main>
  );
}
