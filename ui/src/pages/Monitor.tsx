// The monitoring view of one integration: counters per stage over time
// (sampled from the status API every two seconds, in the browser), pending
// per sink, the last errors, message trace by id and the DLQ browser.
import { useCallback, useEffect, useState } from "react";
import type { Client, DeadLetter, Integration, MessageTrace } from "../api";
import { Button, Card, Confirm, ErrorBox, Modal, cls, fmtBytes, fmtTime, inputCls, usePoll } from "../ui";
import { StateBadge, lifecycle, totals } from "./Integrations";
import { Stat } from "./Tenants";
import { go } from "../App";

interface Sample {
  t: number;
  values: Record<string, number>;
}

const maxSamples = 90;
const palette = ["#0369a1", "#15803d", "#b91c1c", "#7c3aed", "#c2410c", "#0f766e", "#be185d", "#4d7c0f"];

// series names the counters the chart draws: messages in, and per sink
// delivered, failed attempts and dead-lettered.
function sample(it: Integration): Record<string, number> {
  const v: Record<string, number> = { "source: in": it.status.ingested_total };
  for (const s of it.status.sinks ?? []) {
    v[`sink ${s.name}: delivered`] = s.delivered_total;
    v[`sink ${s.name}: failed`] = s.failures_total;
    v[`sink ${s.name}: dead-lettered`] = s.dead_lettered_total;
  }
  return v;
}

export default function Monitor({ client, name }: { client: Client; name: string }) {
  const base = `/integrations/${encodeURIComponent(name)}`;
  const [it, setIt] = useState<Integration | null>(null);
  const [samples, setSamples] = useState<Sample[]>([]);
  const [err, setErr] = useState<unknown>(null);
  const [dlqTick, setDlqTick] = useState(0);

  usePoll(
    async () => {
      try {
        const x = await client.call<Integration>(base, { scoped: true });
        setIt(x);
        setSamples((s) => [...s, { t: Date.now(), values: sample(x) }].slice(-maxSamples));
        setErr(null);
      } catch (e) {
        setErr(e);
      }
    },
    2000,
    [client, base],
  );

  const act = async (a: "start" | "stop") => {
    try {
      await lifecycle(client, name, a);
      setIt(await client.call<Integration>(base, { scoped: true }));
    } catch (e) {
      setErr(e);
    }
  };

  if (!it) return <Card title={name}>{err ? <ErrorBox error={err} /> : <p className="text-sm">Loading…</p>}</Card>;
  const t = totals(it);
  const hook = it.spec.source.connector === "http-webhook" ? `${window.location.origin}/hooks/${it.tenant}/${String(it.spec.source.config?.path ?? "")}` : "";
  return (
    <div>
      <div className="mb-3 flex flex-wrap items-center gap-2">
        <h1 className="text-xl font-bold">{it.name}</h1>
        <StateBadge it={it} />
        <div className="ml-auto flex flex-wrap gap-2">
          {it.desired === "running" ? (
            <Button onClick={() => act("stop")}>Stop</Button>
          ) : (
            <Button variant="primary" onClick={() => act("start")}>
              Start
            </Button>
          )}
          <Button onClick={() => go(`integrations/${encodeURIComponent(name)}/edit`)}>Edit</Button>
        </div>
      </div>
      <ErrorBox error={err} />
      {it.status.error && <p className="mb-3 rounded border border-red-300 bg-red-50 p-2 text-sm text-red-900">{it.status.error}</p>}
      {it.spec.description && <p className="mb-3 text-sm text-slate-700">{it.spec.description}</p>}
      {hook && (
        <p className="mb-3 text-sm">
          Webhook: <code className="break-all rounded bg-slate-100 px-1">POST {hook}</code>
        </p>
      )}
      <dl className="mb-4 grid grid-cols-2 gap-2 sm:grid-cols-5">
        <Stat label="Messages in" value={t.ingested} testid="stat-in" />
        <Stat label="Delivered" value={t.delivered} testid="stat-delivered" />
        <Stat label="Failed attempts" value={t.failed} testid="stat-failed" />
        <Stat label="In the DLQ" value={t.dlq} testid="stat-dlq" />
        <Stat label="Waiting for steps" value={it.status.pending} testid="stat-pending" />
      </dl>
      <Card title="Counters over time">
        <Chart samples={samples} />
      </Card>
      <Card title="Sinks">
        <div className="overflow-x-auto">
          <table className="w-full text-left text-sm">
            <thead>
              <tr className="border-b text-xs text-slate-600">
                <th className="py-1">Sink</th>
                <th>Connector</th>
                <th className="text-right">Pending</th>
                <th className="text-right">In flight</th>
                <th className="text-right">Delivered</th>
                <th className="text-right">Failed</th>
                <th className="text-right">DLQ</th>
              </tr>
            </thead>
            <tbody>
              {(it.status.sinks ?? []).map((s) => (
                <tr key={s.name} className="border-b border-slate-100" data-sink={s.name}>
                  <td className="py-1 font-medium">{s.name}</td>
                  <td>{it.spec.sinks.find((x) => x.name === s.name)?.connector}</td>
                  <td className="text-right tabular-nums" data-testid="sink-pending">{s.pending}</td>
                  <td className="text-right tabular-nums">{s.in_flight}</td>
                  <td className="text-right tabular-nums" data-testid="sink-delivered">{s.delivered_total}</td>
                  <td className="text-right tabular-nums">{s.failures_total}</td>
                  <td className="text-right tabular-nums">{s.dlq_depth}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Card>
      <Trace client={client} base={base} />
      <DLQ client={client} it={it} base={base} tick={dlqTick} onChange={() => setDlqTick((n) => n + 1)} depth={it.status.dlq_depth} />
    </div>
  );
}

// Chart draws each counter as a line over the samples taken so far.
function Chart({ samples }: { samples: Sample[] }) {
  const W = 640;
  const H = 200;
  const pad = { l: 40, r: 8, t: 8, b: 20 };
  const keys = samples.length ? Object.keys(samples[samples.length - 1].values) : [];
  const maxV = Math.max(1, ...samples.flatMap((s) => Object.values(s.values)));
  const t0 = samples[0]?.t ?? 0;
  const t1 = Math.max(t0 + 1, samples[samples.length - 1]?.t ?? 1);
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / maxV) * (H - pad.t - pad.b);
  if (samples.length < 2) return <p className="text-sm text-slate-600">Sampling… the chart starts after two readings (one every two seconds, while this page is open).</p>;
  return (
    <figure>
      <svg viewBox={`0 0 ${W} ${H}`} className="h-auto w-full" role="img" aria-label="Counters per stage over time">
        <line x1={pad.l} y1={y(0)} x2={W - pad.r} y2={y(0)} stroke="#cbd5e1" />
        <line x1={pad.l} y1={pad.t} x2={pad.l} y2={y(0)} stroke="#cbd5e1" />
        <text x={pad.l - 4} y={pad.t + 8} textAnchor="end" fontSize="10" fill="#475569">
          {maxV}
        </text>
        <text x={pad.l - 4} y={y(0)} textAnchor="end" fontSize="10" fill="#475569">
          0
        </text>
        <text x={W - pad.r} y={H - 4} textAnchor="end" fontSize="10" fill="#475569">
          last {Math.round((t1 - t0) / 1000)} s
        </text>
        {keys.map((k, i) => (
          <polyline key={k} fill="none" stroke={palette[i % palette.length]} strokeWidth="2" points={samples.map((s) => `${x(s.t).toFixed(1)},${y(s.values[k] ?? 0).toFixed(1)}`).join(" ")} />
        ))}
      </svg>
      <figcaption className="mt-2 flex flex-wrap gap-x-4 gap-y-1 text-xs">
        {keys.map((k, i) => (
          <span key={k} className="flex items-center gap-1">
            <span className="inline-block h-2 w-4 rounded" style={{ background: palette[i % palette.length] }} />
            {k}: <span className="tabular-nums">{samples[samples.length - 1].values[k]}</span>
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

function Trace({ client, base }: { client: Client; base: string }) {
  const [id, setId] = useState("");
  const [trace, setTrace] = useState<MessageTrace | null>(null);
  const [err, setErr] = useState<unknown>(null);
  return (
    <Card title="Find a message">
      <form
        className="mb-3 flex flex-wrap gap-2"
        onSubmit={async (e) => {
          e.preventDefault();
          setErr(null);
          setTrace(null);
          try {
            setTrace(await client.call<MessageTrace>(`${base}/messages/${encodeURIComponent(id.trim())}`, { scoped: true }));
          } catch (x) {
            setErr(x);
          }
        }}
      >
        <label htmlFor="trace-id" className="sr-only">
          Message id
        </label>
        <input id="trace-id" className={cls(inputCls, "max-w-md flex-1 font-mono")} placeholder="message id (the webhook's answer, a dead letter's message_id)" value={id} onChange={(e) => setId(e.target.value)} required />
        <Button type="submit" variant="primary">
          Trace
        </Button>
      </form>
      <ErrorBox error={err} />
      {trace && (
        <div data-testid="trace">
          <p className="mb-2 text-sm">
            Message <code>{trace.id}</code>: <span className="font-semibold" data-testid="trace-state">{trace.state}</span>
          </p>
          <ol className="space-y-1 text-sm">
            {trace.stages.map((s, i) => (
              <li key={i} className="rounded bg-slate-50 p-1.5">
                <span className="font-mono">{s.stage}</span> — <span className="font-medium">{s.status}</span>
                {s.attempt ? ` (attempt ${s.attempt})` : ""} <span className="text-xs text-slate-600">{fmtTime(s.at)}</span>
                {s.error && <span className="block text-xs text-red-800">{s.error}</span>}
                {s.outputs && <span className="block text-xs text-slate-600">→ {s.outputs.join(", ")}</span>}
              </li>
            ))}
          </ol>
        </div>
      )}
    </Card>
  );
}

function DLQ({ client, it, base, tick, onChange, depth }: { client: Client; it: Integration; base: string; tick: number; onChange: () => void; depth: number }) {
  const [stage, setStage] = useState("");
  const [items, setItems] = useState<DeadLetter[]>([]);
  const [next, setNext] = useState("");
  const [err, setErr] = useState<unknown>(null);
  const [open, setOpen] = useState<DeadLetter | null>(null);
  const [note, setNote] = useState("");
  const [del, setDel] = useState<DeadLetter | null>(null);

  const stages = [...(it.spec.steps ?? []).map((s, i) => `step:${s.name || `step-${i + 1}`}`), ...it.spec.sinks.map((s) => `sink:${s.name}`), ...it.spec.sinks.map((s) => `route:${s.name}`), "route"];

  const load = useCallback(
    async (before = "") => {
      try {
        const r = await client.call<{ items: DeadLetter[]; next: string }>(`${base}/dlq`, { query: { stage, before, limit: 50 }, scoped: true });
        setItems((xs) => (before ? [...xs, ...r.items] : r.items));
        setNext(r.next);
        setErr(null);
      } catch (e) {
        setErr(e);
      }
    },
    [client, base, stage],
  );
  // Reload when the filter changes, after an action, and when the depth moves.
  useEffect(() => {
    load();
  }, [load, tick, depth]);

  const replay = async (id?: string) => {
    try {
      if (id) {
        await client.call(`${base}/dlq/${encodeURIComponent(id)}/replay`, { method: "POST", scoped: true });
        setNote(`Dead letter ${id} replayed.`);
        setOpen(null);
      } else {
        const r = await client.call<{ replayed: number }>(`${base}/dlq/replay`, { method: "POST", query: { stage }, scoped: true });
        setNote(`${r.replayed} dead letter(s) replayed.`);
      }
      onChange();
    } catch (e) {
      setErr(e);
    }
  };

  const errors = items.slice(0, 3);
  return (
    <>
      {errors.length > 0 && (
        <Card title="Last errors">
          <ul className="space-y-1 text-sm" data-testid="last-errors">
            {errors.map((d) => (
              <li key={d.id} className="rounded bg-red-50 p-1.5">
                <span className="font-mono text-xs">{d.stage}</span> <span className="text-xs text-slate-600">{fmtTime(d.at)}</span>
                <span className="block break-words text-red-900">{d.error}</span>
              </li>
            ))}
          </ul>
        </Card>
      )}
      <Card
        title={`Dead letters (${depth})`}
        actions={
          <>
            <label className="flex items-center gap-1 text-sm">
              <span>Stage</span>
              <select aria-label="Filter dead letters by stage" className={cls(inputCls, "w-auto")} value={stage} onChange={(e) => setStage(e.target.value)}>
                <option value="">all</option>
                {stages.map((s) => (
                  <option key={s} value={s}>
                    {s}
                  </option>
                ))}
              </select>
            </label>
            <Button onClick={() => load()}>Refresh</Button>
            <Button variant="primary" disabled={items.length === 0} onClick={() => replay()}>
              Replay all
            </Button>
          </>
        }
      >
        <ErrorBox error={err} />
        {note && <p className="mb-2 text-sm text-green-800" role="status">{note}</p>}
        {items.length === 0 ? (
          <p className="text-sm text-slate-600">No dead letters{stage ? ` at ${stage}` : ""}.</p>
        ) : (
          <div className="overflow-x-auto">
            <table className="w-full text-left text-sm" data-testid="dlq">
              <thead>
                <tr className="border-b text-xs text-slate-600">
                  <th className="py-1">Id</th>
                  <th>Stage</th>
                  <th className="text-right">Attempts</th>
                  <th className="hidden md:table-cell">Error</th>
                  <th className="hidden sm:table-cell">When</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {items.map((d) => (
                  <tr key={d.id} className="border-b border-slate-100" data-dlq={d.id}>
                    <td className="py-1 font-mono text-xs">{d.id}</td>
                    <td className="font-mono text-xs">{d.stage}</td>
                    <td className="text-right">{d.attempts}</td>
                    <td className="hidden max-w-xs truncate md:table-cell" title={d.error}>
                      {d.error}
                    </td>
                    <td className="hidden sm:table-cell">{fmtTime(d.at)}</td>
                    <td className="text-right">
                      <Button
                        aria-label={`Open dead letter ${d.id}`}
                        onClick={async () => {
                          try {
                            setOpen(await client.call<DeadLetter>(`${base}/dlq/${encodeURIComponent(d.id)}`, { scoped: true }));
                          } catch (e) {
                            setErr(e);
                          }
                        }}
                      >
                        Open
                      </Button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {next && (
              <Button className="mt-2" onClick={() => load(next)}>
                Older
              </Button>
            )}
          </div>
        )}
      </Card>
      {open && (
        <Modal title={`Dead letter ${open.id}`} onClose={() => setOpen(null)}>
          <dl className="mb-3 grid grid-cols-[8rem_1fr] gap-1 text-sm">
            <dt className="text-slate-600">Message</dt>
            <dd className="break-all font-mono text-xs" data-testid="dlq-message-id">{open.message_id}</dd>
            <dt className="text-slate-600">Stage</dt>
            <dd className="font-mono text-xs">{open.stage}</dd>
            <dt className="text-slate-600">Attempts</dt>
            <dd>{open.attempts}</dd>
            <dt className="text-slate-600">Size</dt>
            <dd>{fmtBytes(open.size)}</dd>
            <dt className="text-slate-600">Error</dt>
            <dd className="break-words text-red-900">{open.error}</dd>
          </dl>
          <h3 className="mb-1 text-sm font-semibold">Payload</h3>
          <pre className="mb-3 max-h-48 overflow-auto rounded bg-slate-100 p-2 text-xs" data-testid="dlq-payload">
            {open.payload_text ?? (open.payload_base64 ? `(binary, base64) ${open.payload_base64}` : open.payload_ref ? `(claim-checked: ${open.payload_ref})` : "")}
          </pre>
          <h3 className="mb-1 text-sm font-semibold">Attempts</h3>
          <ol className="mb-3 space-y-1 text-xs">
            {open.attempt_log.map((a) => (
              <li key={a.attempt}>
                #{a.attempt} {fmtTime(a.at)}: {a.error}
              </li>
            ))}
          </ol>
          <details className="mb-3 text-xs">
            <summary className="cursor-pointer">Headers</summary>
            <pre className="overflow-auto rounded bg-slate-100 p-2">{JSON.stringify(open.headers, null, 2)}</pre>
          </details>
          <div className="flex justify-end gap-2">
            <Button variant="danger" onClick={() => setDel(open)}>
              Delete
            </Button>
            <Button variant="primary" onClick={() => replay(open.id)}>
              Replay
            </Button>
          </div>
        </Modal>
      )}
      {del && (
        <Confirm
          title={`Delete dead letter ${del.id}?`}
          text="The message leaves the pipeline for good."
          confirm="Delete"
          onConfirm={async () => {
            await client.call(`${base}/dlq/${encodeURIComponent(del.id)}`, { method: "DELETE", scoped: true });
            setOpen(null);
            setNote(`Dead letter ${del.id} deleted.`);
            onChange();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </>
  );
}
