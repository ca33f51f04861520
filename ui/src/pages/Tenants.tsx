// Tenants (admin): list, create (the first key shown once), quotas and
// usage, keys, delete. A tenant key sees its own tenant and keys.
import { useCallback, useEffect, useState } from "react";
import type { Client, Key, KeyCreated, Quotas, Tenant, TenantCreated } from "../api";
import { Button, Card, Confirm, CopyButton, ErrorBox, Field, Modal, fmtBytes, fmtTime, inputCls } from "../ui";
import { go } from "../App";

const changed = () => window.dispatchEvent(new Event("vrsky:tenants-changed"));

export default function Tenants({ client, selected }: { client: Client; selected?: string }) {
  const admin = client.session.admin;
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const [err, setErr] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ title: string; key: string } | null>(null);

  const load = useCallback(async () => {
    if (!admin) return;
    try {
      setTenants((await client.call<{ tenants: Tenant[] }>("/tenants")).tenants);
      setErr(null);
    } catch (e) {
      setErr(e);
    }
  }, [client, admin]);
  useEffect(() => {
    load();
  }, [load]);

  return (
    <div className="grid gap-4 md:grid-cols-[16rem_1fr]">
      {admin && (
        <div>
          <Card title="Tenants" actions={<Button variant="primary" data-testid="new-tenant" onClick={() => setCreating(true)}>New tenant</Button>}>
            <ErrorBox error={err} />
            {tenants.length === 0 && <p className="text-sm text-slate-600">No tenants yet.</p>}
            <ul className="divide-y divide-slate-100" data-testid="tenant-list">
              {tenants.map((t) => (
                <li key={t.name}>
                  <a href={`#/tenants/${encodeURIComponent(t.name)}`} aria-current={t.name === selected ? "true" : undefined} className="block rounded px-2 py-1.5 text-sm hover:bg-slate-100 aria-[current]:bg-sky-100">
                    <span className="font-medium">{t.name}</span>
                    {t.display_name && <span className="block text-xs text-slate-600">{t.display_name}</span>}
                  </a>
                </li>
              ))}
            </ul>
          </Card>
        </div>
      )}
      <div className={admin ? "" : "md:col-span-2"}>
        {selected ? (
          <TenantDetail
            key={selected}
            client={client}
            name={selected}
            onSecret={setSecret}
            onDeleted={() => {
              load();
              changed();
              go("tenants");
            }}
            onSaved={load}
          />
        ) : (
          <Card>
            <p className="text-sm text-slate-600">{admin ? "Choose a tenant, or create one." : "Sign in again with your tenant's name to see it here."}</p>
          </Card>
        )}
      </div>
      {creating && (
        <CreateTenant
          client={client}
          onClose={() => setCreating(false)}
          onCreated={(t) => {
            setCreating(false);
            load();
            changed();
            setSecret({ title: `Tenant ${t.name} created: its first API key`, key: t.api_key });
            go("tenants/" + encodeURIComponent(t.name));
          }}
        />
      )}
      {secret && <SecretModal title={secret.title} secret={secret.key} onClose={() => setSecret(null)} />}
    </div>
  );
}

function SecretModal({ title, secret, onClose }: { title: string; secret: string; onClose: () => void }) {
  return (
    <Modal title={title} onClose={onClose}>
      <p className="mb-2 text-sm">This key is shown once: copy it now. VRSky keeps only its hash.</p>
      <div className="flex flex-wrap items-center gap-2">
        <code data-copy-source data-testid="new-key" className="min-w-0 flex-1 break-all rounded bg-slate-100 p-2 text-xs">
          {secret}
        </code>
        <CopyButton text={secret} label="Copy key" />
      </div>
      <div className="mt-4 flex justify-end">
        <Button variant="primary" onClick={onClose}>
          Done
        </Button>
      </div>
    </Modal>
  );
}

function QuotaInputs({ quotas, set }: { quotas: Quotas; set: (q: Quotas) => void }) {
  const fields: [keyof Quotas, string, string][] = [
    ["max_integrations", "Max integrations", "How many integrations the tenant may define."],
    ["max_messages_per_second", "Max messages per second", "Ingress rate over all its sources."],
    ["max_storage_bytes", "Max storage (bytes)", "What JetStream may hold in its account."],
  ];
  return (
    <div className="grid gap-x-3 sm:grid-cols-3">
      {fields.map(([k, label, help]) => (
        <Field key={k} label={label} htmlFor={"quota-" + k} help={help + " 0 or empty: no limit."}>
          <input
            id={"quota-" + k}
            className={inputCls}
            type="number"
            min={0}
            value={quotas[k] ?? ""}
            onChange={(e) => set({ ...quotas, [k]: e.target.value === "" ? undefined : Number(e.target.value) })}
          />
        </Field>
      ))}
    </div>
  );
}

function CreateTenant({ client, onClose, onCreated }: { client: Client; onClose: () => void; onCreated: (t: TenantCreated) => void }) {
  const [name, setName] = useState("");
  const [display, setDisplay] = useState("");
  const [quotas, setQuotas] = useState<Quotas>({});
  const [err, setErr] = useState<unknown>(null);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    try {
      onCreated(await client.json<TenantCreated>("POST", "/tenants", { name, display_name: display || undefined, quotas }));
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <Modal title="New tenant" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Name" htmlFor="tenant-name" help="Lower-case letters, digits and dashes; it appears in webhook URLs.">
          <input id="tenant-name" className={inputCls} value={name} onChange={(e) => setName(e.target.value)} required />
        </Field>
        <Field label="Display name" htmlFor="tenant-display">
          <input id="tenant-display" className={inputCls} value={display} onChange={(e) => setDisplay(e.target.value)} />
        </Field>
        <QuotaInputs quotas={quotas} set={setQuotas} />
        <ErrorBox error={err} />
        <div className="flex justify-end gap-2">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary">
            Create tenant
          </Button>
        </div>
      </form>
    </Modal>
  );
}

function TenantDetail({ client, name, onSecret, onDeleted, onSaved }: { client: Client; name: string; onSecret: (s: { title: string; key: string }) => void; onDeleted: () => void; onSaved: () => void }) {
  const admin = client.session.admin;
  const path = `/tenants/${encodeURIComponent(name)}`;
  const [tenant, setTenant] = useState<Tenant | null>(null);
  const [quotas, setQuotas] = useState<Quotas>({});
  const [keys, setKeys] = useState<Key[]>([]);
  const [err, setErr] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [keyName, setKeyName] = useState("");
  const [confirm, setConfirm] = useState<null | { title: string; text: string; confirm: string; run: () => Promise<void> }>(null);

  const load = useCallback(async () => {
    try {
      const t = await client.call<Tenant>(path);
      setTenant(t);
      setQuotas(t.quotas ?? {});
      setKeys((await client.call<{ keys: Key[] }>(path + "/keys")).keys ?? []);
      setErr(null);
    } catch (e) {
      setErr(e);
    }
  }, [client, path]);
  useEffect(() => {
    load();
  }, [load]);

  if (!tenant) return <Card title={name}><ErrorBox error={err} /></Card>;
  const u = tenant.usage;
  return (
    <>
      <Card
        title={<span data-testid="tenant-title">{tenant.display_name ? `${tenant.display_name} (${tenant.name})` : tenant.name}</span>}
        actions={
          admin && (
            <Button
              variant="danger"
              onClick={() =>
                setConfirm({
                  title: `Delete tenant ${name}?`,
                  text: `This deletes ${name}, its keys and its integrations with their streams and dead letters. It cannot be undone.`,
                  confirm: "Delete tenant",
                  run: async () => {
                    await client.call(path, { method: "DELETE" });
                    onDeleted();
                  },
                })
              }
            >
              Delete
            </Button>
          )
        }
      >
        <ErrorBox error={err} />
        <dl className="mb-4 grid grid-cols-2 gap-2 text-sm sm:grid-cols-4">
          <Stat label="Integrations" testid="usage-integrations" value={`${u?.integrations ?? "?"}${tenant.quotas.max_integrations ? " / " + tenant.quotas.max_integrations : ""}`} />
          <Stat label="Storage" value={`${fmtBytes(u?.storage_bytes)}${tenant.quotas.max_storage_bytes ? " / " + fmtBytes(tenant.quotas.max_storage_bytes) : ""}`} />
          <Stat label="Streams" value={String(u?.streams ?? "?")} />
          <Stat label="Placement" value={tenant.placement || "shared"} />
        </dl>
        <p className="mb-3 text-xs text-slate-600">Created {fmtTime(tenant.created_at)}.</p>
        <h3 className="mb-2 font-semibold">Quotas</h3>
        {admin ? (
          <form
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                await client.json("PATCH", path, { quotas });
                setSaved(true);
                onSaved();
                load();
              } catch (e) {
                setErr(e);
              }
            }}
          >
            <QuotaInputs quotas={quotas} set={(q) => { setQuotas(q); setSaved(false); }} />
            <Button type="submit" variant="primary">
              Save quotas
            </Button>
            {saved && <span className="ml-2 text-sm text-green-700">Saved.</span>}
          </form>
        ) : (
          <p className="text-sm">
            {Object.entries(tenant.quotas).length ? Object.entries(tenant.quotas).map(([k, v]) => `${k}: ${v}`).join(", ") : "No limits."}
          </p>
        )}
      </Card>
      <Card title="API keys">
        <table className="mb-3 w-full text-left text-sm">
          <thead>
            <tr className="border-b text-xs text-slate-600">
              <th className="py-1">Id</th>
              <th>Name</th>
              <th className="hidden sm:table-cell">Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} className="border-b border-slate-100" data-key={k.id}>
                <td className="py-1 font-mono text-xs">{k.id}</td>
                <td>{k.name}</td>
                <td className="hidden sm:table-cell">{fmtTime(k.created_at)}</td>
                <td className="text-right">
                  <Button
                    aria-label={`Revoke key ${k.id}`}
                    onClick={() =>
                      setConfirm({
                        title: "Revoke this key?",
                        text: `Key ${k.id} stops authenticating at once.`,
                        confirm: "Revoke",
                        run: async () => {
                          await client.call(`${path}/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
                          load();
                        },
                      })
                    }
                  >
                    Revoke
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <form
          className="flex flex-wrap items-end gap-2"
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              const k = await client.json<KeyCreated>("POST", path + "/keys", keyName ? { name: keyName } : {});
              setKeyName("");
              onSecret({ title: `New key for ${name}`, key: k.api_key });
              load();
            } catch (e) {
              setErr(e);
            }
          }}
        >
          <label className="text-sm">
            <span className="mb-1 block font-medium">Key name (optional)</span>
            <input id="key-name" className={inputCls} value={keyName} onChange={(e) => setKeyName(e.target.value)} />
          </label>
          <Button type="submit" variant="primary">
            Issue key
          </Button>
        </form>
      </Card>
      {confirm && <Confirm title={confirm.title} text={confirm.text} confirm={confirm.confirm} onConfirm={confirm.run} onClose={() => setConfirm(null)} />}
    </>
  );
}

export function Stat({ label, value, testid }: { label: string; value: string | number; testid?: string }) {
  return (
    <div className="rounded bg-slate-50 p-2">
      <dt className="text-xs text-slate-600">{label}</dt>
      <dd className="text-base font-semibold" data-testid={testid}>
        {value}
      </dd>
    </div>
  );
}
