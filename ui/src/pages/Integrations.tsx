// The tenant's integrations with their state and counters, refreshed every
// two seconds; start, stop, edit and delete from the list.
import { useState } from "react";
import type { Client, Integration } from "../api";
import { Button, Card, Confirm, ErrorBox, cls, usePoll } from "../ui";

export function StateBadge({ it }: { it: Integration }) {
  const s = it.status?.state ?? "unknown";
  const color = s === "running" ? "bg-green-100 text-green-900" : s === "error" ? "bg-red-100 text-red-900" : "bg-slate-200 text-slate-800";
  return (
    <span className={cls("rounded px-2 py-0.5 text-xs font-medium", color)} data-testid="state" title={it.status?.error}>
      {s}
      {it.status?.starting ? " (starting)" : ""}
      {it.desired !== s && s !== "error" ? ` → ${it.desired}` : ""}
    </span>
  );
}

export function totals(it: Integration) {
  const sinks = it.status?.sinks ?? [];
  return {
    ingested: it.status?.ingested_total ?? 0,
    delivered: sinks.reduce((n, s) => n + s.delivered_total, 0),
    failed: sinks.reduce((n, s) => n + s.failures_total, 0),
    dlq: it.status?.dlq_depth ?? 0,
  };
}

export async function lifecycle(client: Client, name: string, action: "start" | "stop") {
  await client.call(`/integrations/${encodeURIComponent(name)}/${action}`, { method: "POST", scoped: true });
}

export default function Integrations({ client }: { client: Client }) {
  const [items, setItems] = useState<Integration[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [del, setDel] = useState<string | null>(null);
  const load = async () => {
    try {
      setItems((await client.call<{ integrations: Integration[] }>("/integrations", { scoped: true })).integrations);
      setErr(null);
    } catch (e) {
      setErr(e);
    }
  };
  usePoll(load, 2000, [client]);

  const act = async (name: string, action: "start" | "stop") => {
    try {
      await lifecycle(client, name, action);
      await load();
    } catch (e) {
      setErr(e);
    }
  };

  return (
    <Card
      title="Integrations"
      actions={
        <a href="#/integrations/new" className="rounded bg-sky-700 px-3 py-1.5 text-sm font-medium text-white hover:bg-sky-800">
          New integration
        </a>
      }
    >
      <ErrorBox error={err} />
      {items && items.length === 0 && <p className="text-sm text-slate-600">No integrations yet: create one with the wizard.</p>}
      <div className="overflow-x-auto">
        <table className="w-full text-left text-sm">
          <thead>
            <tr className="border-b text-xs text-slate-600">
              <th className="py-1">Name</th>
              <th>State</th>
              <th className="text-right">In</th>
              <th className="text-right">Delivered</th>
              <th className="hidden text-right sm:table-cell">Failed</th>
              <th className="text-right">DLQ</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((it) => {
              const t = totals(it);
              return (
                <tr key={it.name} className="border-b border-slate-100" data-integration={it.name}>
                  <td className="py-1.5">
                    <a className="font-medium text-sky-800 underline" href={`#/integrations/${encodeURIComponent(it.name)}`}>
                      {it.name}
                    </a>
                  </td>
                  <td>
                    <StateBadge it={it} />
                  </td>
                  <td className="text-right tabular-nums" data-testid="ingested">{t.ingested}</td>
                  <td className="text-right tabular-nums" data-testid="delivered">{t.delivered}</td>
                  <td className="hidden text-right tabular-nums sm:table-cell">{t.failed}</td>
                  <td className="text-right tabular-nums">{t.dlq}</td>
                  <td className="py-1">
                    <div className="flex justify-end gap-1">
                      {it.desired === "running" ? (
                        <Button aria-label={`Stop ${it.name}`} onClick={() => act(it.name, "stop")}>Stop</Button>
                      ) : (
                        <Button aria-label={`Start ${it.name}`} variant="primary" onClick={() => act(it.name, "start")}>Start</Button>
                      )}
                      <a className="rounded border border-slate-300 px-3 py-1.5 text-sm hover:bg-slate-100" href={`#/integrations/${encodeURIComponent(it.name)}/edit`} aria-label={`Edit ${it.name}`}>
                        Edit
                      </a>
                      <Button aria-label={`Delete ${it.name}`} variant="danger" onClick={() => setDel(it.name)}>Delete</Button>
                    </div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {del && (
        <Confirm
          title={`Delete ${del}?`}
          text="This deletes the integration, its stream and its consumers; messages still waiting are dropped."
          confirm="Delete integration"
          onConfirm={async () => {
            await client.call(`/integrations/${encodeURIComponent(del)}`, { method: "DELETE", scoped: true });
            await load();
          }}
          onClose={() => setDel(null)}
        />
      )}
    </Card>
  );
}
