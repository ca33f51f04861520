// The integration wizard: source, steps and sinks chosen from the
// catalogue, each configured through a form generated from its JSON Schema,
// `when` per sink, retry, and a YAML view kept in step with the form. The
// server validates (?dry_run=true) before anything is created or replaced.
import { useEffect, useMemo, useRef, useState } from "react";
import YAML from "yaml";
import { ApiError, type Client, type Connector, type Integration, type SinkSpec, type Spec, type StageSpec } from "../api";
import SchemaForm, { domId, matches } from "../SchemaForm";
import { Button, Card, ErrorBox, Field, cls, inputCls } from "../ui";
import { go } from "../App";

const empty: Spec = { name: "", source: { connector: "" }, steps: [], sinks: [{ name: "", connector: "" }] };

// clean drops what the user left empty, so the YAML shows only choices.
function clean(s: Spec): Spec {
  const stage = <T extends StageSpec>(x: T): T => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) {
      if (v === undefined || v === "") continue;
      if (k === "config" && v && typeof v === "object" && Object.keys(v).length === 0) continue;
      out[k] = v;
    }
    return out as T;
  };
  const out: Spec = { name: s.name, source: stage(s.source), sinks: s.sinks.map(stage) };
  if (s.description) out.description = s.description;
  if (s.steps && s.steps.length) out.steps = s.steps.map(stage);
  if (s.retry) {
    const r = Object.fromEntries(Object.entries(s.retry).filter(([, v]) => v !== undefined && v !== ""));
    if (Object.keys(r).length) out.retry = r;
  }
  // Key order as in the docs: name, description, source, steps, sinks, retry.
  return { name: out.name, ...(out.description ? { description: out.description } : {}), source: out.source, ...(out.steps ? { steps: out.steps } : {}), sinks: out.sinks, ...(out.retry ? { retry: out.retry } : {}) };
}

function baseName(connector: string) {
  return connector.split("@")[0];
}

export default function Wizard({ client, edit }: { client: Client; edit?: string }) {
  const [spec, setSpec] = useState<Spec>(empty);
  const [yamlText, setYamlText] = useState(() => YAML.stringify(clean(empty)));
  const [yamlErr, setYamlErr] = useState("");
  const [catalog, setCatalog] = useState<Connector[]>([]);
  const [details, setDetails] = useState<Record<string, Connector>>({});
  const [err, setErr] = useState<ApiError | null>(null);
  const [ok, setOk] = useState("");
  const [busy, setBusy] = useState(false);
  const [loadErr, setLoadErr] = useState<unknown>(null);
  const errorRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    client.call<{ connectors: Connector[] }>("/connectors", { query: { limit: 500 }, scoped: true }).then((r) => setCatalog(r.connectors), setLoadErr);
  }, [client]);
  useEffect(() => {
    if (!edit) return;
    client.call<Integration>(`/integrations/${encodeURIComponent(edit)}`, { scoped: true }).then((it) => {
      const s: Spec = { ...it.spec, steps: it.spec.steps ?? [], sinks: it.spec.sinks ?? [] };
      setSpec(s);
      setYamlText(YAML.stringify(clean(s)));
    }, setLoadErr);
  }, [client, edit]);

  // Fetch each chosen connector's schema once.
  const chosen = useMemo(() => [spec.source.connector, ...(spec.steps ?? []).map((s) => s.connector), ...spec.sinks.map((s) => s.connector)].filter(Boolean).map(baseName), [spec]);
  useEffect(() => {
    for (const name of chosen) {
      if (details[name]) continue;
      setDetails((d) => ({ ...d, [name]: { name, version: "", kind: "step", builtin: false } }));
      client.call<Connector>(`/connectors/${encodeURIComponent(name)}`, { scoped: true }).then(
        (c) => setDetails((d) => ({ ...d, [name]: c })),
        () => undefined,
      );
    }
  }, [chosen, client, details]);

  const update = (s: Spec) => {
    setSpec(s);
    setYamlText(YAML.stringify(clean(s)));
    setOk("");
  };

  const onYaml = (text: string) => {
    setYamlText(text);
    setOk("");
    try {
      const doc = YAML.parse(text) as Spec | null;
      if (!doc || typeof doc !== "object") throw new Error("the document is not a mapping");
      setSpec({ ...empty, ...doc, source: doc.source ?? { connector: "" }, steps: doc.steps ?? [], sinks: doc.sinks ?? [] });
      setYamlErr("");
    } catch (e) {
      setYamlErr((e as Error).message);
    }
  };

  const send = async (dryRun: boolean) => {
    const body = JSON.stringify(clean(spec));
    const path = edit ? `/integrations/${encodeURIComponent(edit)}` : "/integrations";
    return client.call<Integration>(path, { method: edit ? "PUT" : "POST", body, contentType: "application/json", query: dryRun ? { dry_run: "true" } : undefined, scoped: true });
  };

  const run = async (create: boolean) => {
    setBusy(true);
    setErr(null);
    setOk("");
    try {
      await send(true);
      if (!create) {
        setOk("The server accepts this integration.");
        return;
      }
      const it = await send(false);
      go("integrations/" + encodeURIComponent(it.name));
    } catch (e) {
      const ae = e instanceof ApiError ? e : new ApiError(0, "error", String(e));
      setErr(ae);
      // Bring the field in error into view and focus it.
      window.setTimeout(() => {
        const el = ae.field ? document.getElementById(domId(ae.field)) ?? document.querySelector<HTMLElement>(`[data-field="${CSS.escape(ae.field)}"]`) : null;
        if (el) {
          el.scrollIntoView({ block: "center" });
          el.focus();
        } else errorRef.current?.scrollIntoView({ block: "center" });
      }, 0);
    } finally {
      setBusy(false);
    }
  };

  const fieldErr = err?.field ? { field: err.field, message: err.message } : undefined;
  const byKind = (k: string) => catalog.filter((c) => c.kind === k);
  const hookURL = spec.source.connector === "http-webhook" && typeof spec.source.config?.path === "string" ? `${window.location.origin}/hooks/${client.session.tenant || "{tenant}"}/${spec.source.config.path}` : "";

  return (
    <div>
      <h1 className="mb-3 text-xl font-bold">{edit ? `Edit ${edit}` : "New integration"}</h1>
      <ErrorBox error={loadErr} />
      <div className="grid gap-4 lg:grid-cols-[1fr_24rem]">
        <div>
          <Card title="1. Name">
            <div className="grid gap-x-3 sm:grid-cols-2">
              <TextField label="name" field="name" required value={spec.name} disabled={!!edit} error={fieldErr} onChange={(x) => update({ ...spec, name: x })} help="Lower-case letters, digits and dashes." />
              <TextField label="description" field="description" value={spec.description ?? ""} error={fieldErr} onChange={(x) => update({ ...spec, description: x })} />
            </div>
          </Card>
          <Card title="2. Source">
            <StageEditor kind="source" options={byKind("source")} stage={spec.source} field="source" details={details} error={fieldErr} onChange={(s) => update({ ...spec, source: s })} />
            {hookURL && (
              <p className="text-sm">
                Webhook URL: <code data-testid="hook-url" className="break-all rounded bg-slate-100 px-1">{hookURL}</code>
              </p>
            )}
          </Card>
          <Card title="3. Steps" actions={<Button onClick={() => update({ ...spec, steps: [...(spec.steps ?? []), { connector: "" }] })}>Add step</Button>}>
            {(spec.steps ?? []).length === 0 && <p className="text-sm text-slate-600">No steps: messages go to the sinks as they came in.</p>}
            {(spec.steps ?? []).map((st, i) => (
              <div key={i} className="mb-3 rounded border border-slate-200 p-3" data-testid={`step-${i}`}>
                <div className="mb-2 flex items-center justify-between">
                  <h3 className="font-semibold">Step {i + 1}</h3>
                  <Button aria-label={`Remove step ${i + 1}`} onClick={() => update({ ...spec, steps: spec.steps!.filter((_, j) => j !== i) })}>Remove</Button>
                </div>
                <StageEditor kind="step" options={byKind("step")} stage={st} field={`steps[${i}]`} details={details} error={fieldErr} named onChange={(s) => update({ ...spec, steps: spec.steps!.map((x, j) => (j === i ? s : x)) })} />
              </div>
            ))}
          </Card>
          <Card title="4. Sinks" actions={<Button onClick={() => update({ ...spec, sinks: [...spec.sinks, { name: "", connector: "" }] })}>Add sink</Button>}>
            {spec.sinks.map((sk, i) => (
              <div key={i} className="mb-3 rounded border border-slate-200 p-3" data-testid={`sink-${i}`}>
                <div className="mb-2 flex items-center justify-between">
                  <h3 className="font-semibold">Sink {i + 1}</h3>
                  {spec.sinks.length > 1 && <Button aria-label={`Remove sink ${i + 1}`} onClick={() => update({ ...spec, sinks: spec.sinks.filter((_, j) => j !== i) })}>Remove</Button>}
                </div>
                <div className="grid gap-x-3 sm:grid-cols-2">
                  <TextField label="name" field={`sinks[${i}].name`} required value={sk.name} error={fieldErr} onChange={(x) => update({ ...spec, sinks: spec.sinks.map((s, j) => (j === i ? { ...s, name: x } : s)) })} />
                  <TextField label="when" field={`sinks[${i}].when`} value={sk.when ?? ""} error={fieldErr} placeholder="total > 1000" help="Routing: an expr-lang condition over the message's JSON fields; empty sends every message." onChange={(x) => update({ ...spec, sinks: spec.sinks.map((s, j) => (j === i ? { ...s, when: x } : s)) })} />
                </div>
                <StageEditor kind="sink" options={byKind("sink")} stage={sk} field={`sinks[${i}]`} details={details} error={fieldErr} onChange={(s) => update({ ...spec, sinks: spec.sinks.map((x, j) => (j === i ? (s as SinkSpec) : x)) })} />
              </div>
            ))}
          </Card>
          <Card title="5. Retry">
            <div className="grid gap-x-3 sm:grid-cols-3">
              <Field label={<code>max_attempts</code>} htmlFor={domId("retry.max_attempts")} help="Attempts in all before a message is dead-lettered. Default: 3.">
                <input
                  id={domId("retry.max_attempts")}
                  data-field="retry.max_attempts"
                  type="number"
                  min={1}
                  className={cls(inputCls, matches(fieldErr?.field, "retry.max_attempts") && "border-red-600 ring-2 ring-red-300")}
                  value={spec.retry?.max_attempts ?? ""}
                  placeholder="3"
                  onChange={(e) => update({ ...spec, retry: { ...spec.retry, max_attempts: e.target.value === "" ? undefined : Number(e.target.value) } })}
                />
              </Field>
              <TextField label="initial_backoff" field="retry.initial_backoff" placeholder="1s" help="First wait between attempts (Go duration)." value={spec.retry?.initial_backoff ?? ""} error={fieldErr} onChange={(x) => update({ ...spec, retry: { ...spec.retry, initial_backoff: x } })} />
              <TextField label="max_backoff" field="retry.max_backoff" placeholder="30s" help="Longest wait between attempts." value={spec.retry?.max_backoff ?? ""} error={fieldErr} onChange={(x) => update({ ...spec, retry: { ...spec.retry, max_backoff: x } })} />
            </div>
          </Card>
          <div ref={errorRef}>
            <ErrorBox error={err} />
            {ok && <p className="my-2 rounded border border-green-300 bg-green-50 p-2 text-sm text-green-900" role="status">{ok}</p>}
          </div>
          <div className="mb-6 flex flex-wrap gap-2">
            <Button disabled={busy} onClick={() => run(false)}>
              Validate
            </Button>
            <Button variant="primary" disabled={busy} onClick={() => run(true)}>
              {edit ? "Save changes" : "Create integration"}
            </Button>
            <a href={edit ? `#/integrations/${encodeURIComponent(edit)}` : "#/integrations"} className="rounded px-3 py-1.5 text-sm underline">
              Cancel
            </a>
          </div>
        </div>
        <div>
          <Card title="YAML">
            <p className="mb-2 text-xs text-slate-600">The spec the form builds; edit either side, they stay in step. The same document works with <code>vrsky integration apply -f</code>.</p>
            <textarea aria-label="Integration spec as YAML" data-testid="yaml" className={cls(inputCls, "h-96 font-mono text-xs lg:h-[36rem]", yamlErr && "border-red-600")} value={yamlText} spellCheck={false} onChange={(e) => onYaml(e.target.value)} />
            {yamlErr && <p className="mt-1 text-xs text-red-700">YAML: {yamlErr}</p>}
          </Card>
        </div>
      </div>
    </div>
  );
}

function TextField({ label, field, value, onChange, error, help, required, placeholder, disabled }: { label: string; field: string; value: string; onChange: (v: string) => void; error?: { field: string; message: string }; help?: string; required?: boolean; placeholder?: string; disabled?: boolean }) {
  const bad = matches(error?.field, field);
  return (
    <Field
      label={
        <>
          <code>{label}</code>
          {required && <span className="text-red-700"> *</span>}
        </>
      }
      htmlFor={domId(field)}
      help={help}
      error={bad ? error!.message : undefined}
    >
      <input id={domId(field)} data-field={field} aria-invalid={bad || undefined} className={cls(inputCls, bad && "border-red-600 ring-2 ring-red-300")} value={value} placeholder={placeholder} disabled={disabled} required={required} onChange={(e) => onChange(e.target.value)} />
    </Field>
  );
}

function StageEditor({ kind, options, stage, field, details, error, onChange, named }: { kind: string; options: Connector[]; stage: StageSpec; field: string; details: Record<string, Connector>; error?: { field: string; message: string }; onChange: (s: StageSpec) => void; named?: boolean }) {
  const det = stage.connector ? details[baseName(stage.connector)] : undefined;
  const bad = matches(error?.field, field + ".connector");
  const known = options.some((o) => o.name === baseName(stage.connector));
  return (
    <div>
      <div className="grid gap-x-3 sm:grid-cols-2">
        <Field label={<><code>connector</code><span className="text-red-700"> *</span></>} htmlFor={domId(field + ".connector")} help={det?.description} error={bad ? error!.message : undefined}>
          <select
            id={domId(field + ".connector")}
            data-field={field + ".connector"}
            aria-invalid={bad || undefined}
            className={cls(inputCls, bad && "border-red-600 ring-2 ring-red-300")}
            value={stage.connector}
            onChange={(e) => onChange({ ...stage, connector: e.target.value, config: undefined })}
          >
            <option value="">(choose a {kind})</option>
            {!known && stage.connector && <option value={stage.connector}>{stage.connector}</option>}
            {options.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name} {c.builtin ? "" : `(${c.origin ?? "wasm"} ${c.version})`}
              </option>
            ))}
          </select>
        </Field>
        {named && (
          <TextField label="name" field={field + ".name"} value={stage.name ?? ""} error={error} help="Optional: names the step in traces and dead letters." onChange={(x) => onChange({ ...stage, name: x })} />
        )}
      </div>
      {det?.config_schema && (
        <div className="mt-1 border-l-4 border-sky-100 pl-3">
          <SchemaForm schema={det.config_schema} value={stage.config} field={field + ".config"} error={error} onChange={(c) => onChange({ ...stage, config: c })} />
        </div>
      )}
    </div>
  );
}
