// The connector marketplace: the catalogue (built-in, shipped and uploaded)
// with search and filters, a connector's detail, and uploads.
import { useEffect, useState } from "react";
import type { Client, Connector } from "../api";
import { Button, Card, ErrorBox, Field, Modal, cls, fmtBytes, fmtTime, inputCls } from "../ui";
import { go } from "../App";

export default function Marketplace({ client, selected }: { client: Client; selected?: string }) {
  const [q, setQ] = useState("");
  const [kind, setKind] = useState("");
  const [tag, setTag] = useState("");
  const [items, setItems] = useState<Connector[]>([]);
  const [tags, setTags] = useState<string[]>([]);
  const [total, setTotal] = useState(0);
  const [err, setErr] = useState<unknown>(null);
  const [upload, setUpload] = useState(false);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    // Every tag of the catalogue, for the filter.
    client.call<{ connectors: Connector[] }>("/connectors", { query: { limit: 500 }, scoped: true }).then(
      (r) => setTags([...new Set(r.connectors.flatMap((c) => c.tags ?? []))].sort()),
      () => undefined,
    );
  }, [client, tick]);
  useEffect(() => {
    const h = window.setTimeout(() => {
      client.call<{ connectors: Connector[]; total?: number }>("/connectors", { query: { q, kind, tag, limit: 100 }, scoped: true }).then(
        (r) => {
          setItems(r.connectors);
          setTotal(r.total ?? r.connectors.length);
          setErr(null);
        },
        setErr,
      );
    }, 200);
    return () => window.clearTimeout(h);
  }, [client, q, kind, tag, tick]);

  return (
    <div>
      <Card title="Marketplace" actions={<Button variant="primary" onClick={() => setUpload(true)}>Upload a connector</Button>}>
        <div className="mb-3 grid gap-2 sm:grid-cols-[1fr_10rem_10rem]">
          <label>
            <span className="sr-only">Search connectors</span>
            <input type="search" className={inputCls} placeholder="Search name, description, tags" value={q} onChange={(e) => setQ(e.target.value)} aria-label="Search connectors" />
          </label>
          <select aria-label="Kind" className={inputCls} value={kind} onChange={(e) => setKind(e.target.value)}>
            <option value="">every kind</option>
            <option value="source">sources</option>
            <option value="step">steps</option>
            <option value="sink">sinks</option>
          </select>
          <select aria-label="Tag" className={inputCls} value={tag} onChange={(e) => setTag(e.target.value)}>
            <option value="">every tag</option>
            {tags.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </div>
        <ErrorBox error={err} />
        <p className="mb-2 text-xs text-slate-600" data-testid="connector-count">
          {total} connector{total === 1 ? "" : "s"}
        </p>
        <ul className="grid gap-2 sm:grid-cols-2 lg:grid-cols-3" data-testid="connectors">
          {items.map((c) => (
            <li key={c.name}>
              <a href={`#/marketplace/${encodeURIComponent(c.name)}`} className="block h-full rounded border border-slate-200 p-3 hover:border-sky-500 hover:bg-sky-50" data-connector={c.name}>
                <div className="flex items-center justify-between gap-2">
                  <span className="font-semibold">{c.name}</span>
                  <span className="text-xs text-slate-600">
                    {c.kind} · {c.origin ?? (c.builtin ? "builtin" : "wasm")} {c.version}
                  </span>
                </div>
                <p className="mt-1 line-clamp-3 text-sm text-slate-700">{c.description}</p>
                {c.tags && c.tags.length > 0 && (
                  <div className="mt-1 flex flex-wrap gap-1">
                    {c.tags.map((t) => (
                      <span key={t} className="rounded bg-slate-100 px-1.5 text-xs">
                        {t}
                      </span>
                    ))}
                  </div>
                )}
              </a>
            </li>
          ))}
        </ul>
      </Card>
      {selected && <Detail client={client} name={selected} onClose={() => go("marketplace")} />}
      {upload && (
        <Upload
          client={client}
          onClose={() => setUpload(false)}
          onDone={(name) => {
            setUpload(false);
            setTick((n) => n + 1);
            go("marketplace/" + encodeURIComponent(name));
          }}
        />
      )}
    </div>
  );
}

function Detail({ client, name, onClose }: { client: Client; name: string; onClose: () => void }) {
  const [c, setC] = useState<Connector | null>(null);
  const [err, setErr] = useState<unknown>(null);
  useEffect(() => {
    client.call<Connector>(`/connectors/${encodeURIComponent(name)}`, { scoped: true }).then(setC, setErr);
  }, [client, name]);
  const caps = c?.capabilities;
  return (
    <Modal title={name} onClose={onClose}>
      <ErrorBox error={err} />
      {c && (
        <div data-testid="connector-detail">
          <p className="mb-3 text-sm">{c.description}</p>
          <dl className="mb-3 grid grid-cols-[8rem_1fr] gap-1 text-sm">
            <dt className="text-slate-600">Kind</dt>
            <dd>{c.kind}{c.category ? ` (${c.category})` : ""}</dd>
            <dt className="text-slate-600">Origin</dt>
            <dd>{c.origin ?? (c.builtin ? "builtin" : "wasm")}{c.uploader ? `, uploaded by ${c.uploader}` : ""}{c.visibility ? ` · ${c.visibility}` : ""}</dd>
            <dt className="text-slate-600">Latest</dt>
            <dd>{c.version}</dd>
            {c.author && (<><dt className="text-slate-600">Author</dt><dd>{c.author}</dd></>)}
            {c.license && (<><dt className="text-slate-600">License</dt><dd>{c.license}</dd></>)}
            {c.digest && (<><dt className="text-slate-600">Digest</dt><dd className="break-all font-mono text-xs">{c.digest}</dd></>)}
            <dt className="text-slate-600">Used by</dt>
            <dd>{c.usage ?? 0} integration(s)</dd>
            {c.tags && c.tags.length > 0 && (<><dt className="text-slate-600">Tags</dt><dd>{c.tags.join(", ")}</dd></>)}
          </dl>
          {caps && (
            <>
              <h3 className="mb-1 text-sm font-semibold">Capabilities</h3>
              <ul className="mb-3 text-sm">
                {caps.nats && <li>NATS: publish and request on the tenant's subjects</li>}
                {caps.objects && <li>Object store</li>}
                {caps.kv && <li>Key-value store</li>}
                {caps.http_hosts && caps.http_hosts.length > 0 && <li>HTTP to {caps.http_hosts.join(", ")}</li>}
                {caps.wasi_file_stubs && <li>WASI file stubs</li>}
                {!caps.nats && !caps.objects && !caps.kv && !caps.http_hosts?.length && !caps.wasi_file_stubs && <li>None: messages only.</li>}
              </ul>
            </>
          )}
          {c.versions && c.versions.length > 0 && (
            <>
              <h3 className="mb-1 text-sm font-semibold">Versions</h3>
              <div className="mb-3 overflow-x-auto">
                <table className="w-full text-left text-xs">
                  <thead>
                    <tr className="border-b text-slate-600">
                      <th className="py-1">Version</th>
                      <th>Size</th>
                      <th>Signed by</th>
                      <th>Used</th>
                      <th className="hidden sm:table-cell">Published</th>
                    </tr>
                  </thead>
                  <tbody>
                    {c.versions.map((v) => (
                      <tr key={v.version} className="border-b border-slate-100">
                        <td className="py-1">
                          {v.version}
                          {v.deprecated && <span className="ml-1 rounded bg-amber-100 px-1">deprecated</span>}
                        </td>
                        <td>{v.size ? fmtBytes(v.size) : ""}</td>
                        <td className="break-all font-mono">{v.signed_by || "unsigned"}</td>
                        <td>{v.usage}</td>
                        <td className="hidden sm:table-cell">{fmtTime(v.created_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )}
          {c.config_schema && (
            <details className="text-xs">
              <summary className="cursor-pointer text-sm font-semibold">Config schema</summary>
              <pre className="mt-1 max-h-64 overflow-auto rounded bg-slate-100 p-2">{JSON.stringify(c.config_schema, null, 2)}</pre>
            </details>
          )}
        </div>
      )}
    </Modal>
  );
}

function Upload({ client, onClose, onDone }: { client: Client; onClose: () => void; onDone: (name: string) => void }) {
  const [manifest, setManifest] = useState<File | null>(null);
  const [module, setModule] = useState<File | null>(null);
  const [signature, setSignature] = useState("");
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!manifest || !module) return;
    setBusy(true);
    setErr(null);
    const form = new FormData();
    form.append("manifest", new Blob([await manifest.text()], { type: "application/yaml" }), manifest.name);
    form.append("module", module, module.name);
    if (signature.trim()) form.append("signature", signature.trim());
    try {
      const r = await client.call<{ name: string; version: string }>("/connectors", { method: "POST", body: form, scoped: true });
      onDone(r.name);
    } catch (x) {
      setErr(x);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title="Upload a connector" onClose={onClose}>
      <form onSubmit={submit}>
        <p className="mb-3 text-sm text-slate-600">A Wasm step: its manifest (vrsky-connector.yaml) and its module (.wasm). The registry checks both before it stores anything.</p>
        <Field label="Manifest" htmlFor="upload-manifest">
          <input id="upload-manifest" type="file" accept=".yaml,.yml,.json" className={cls(inputCls)} onChange={(e) => setManifest(e.target.files?.[0] ?? null)} required />
        </Field>
        <Field label="Module" htmlFor="upload-module">
          <input id="upload-module" type="file" accept=".wasm" className={cls(inputCls)} onChange={(e) => setModule(e.target.files?.[0] ?? null)} required />
        </Field>
        <Field label="Signature (optional)" htmlFor="upload-signature" help="The output of vrsky connector sign, when the server requires signed uploads.">
          <input id="upload-signature" className={inputCls} value={signature} onChange={(e) => setSignature(e.target.value)} />
        </Field>
        <ErrorBox error={err} />
        <div className="flex justify-end gap-2">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" disabled={busy || !manifest || !module}>
            Upload
          </Button>
        </div>
      </form>
    </Modal>
  );
}
