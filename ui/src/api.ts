// The REST API client: every call the UI makes goes through /api/v1 with
// the signed-in key (kept in sessionStorage, never in localStorage).

export interface Session {
  key: string;
  admin: boolean;
  // The tenant a tenant key belongs to, or the tenant the admin works on
  // (sent as X-Vrsky-Tenant on integration routes); "" when none.
  tenant: string;
}

const storageKey = "vrsky.session";

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(storageKey);
  if (!raw) return null;
  try {
    return JSON.parse(raw) as Session;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null) {
  if (s) sessionStorage.setItem(storageKey, JSON.stringify(s));
  else sessionStorage.removeItem(storageKey);
}

// ApiError is the API's error document: a code, a message and the field
// in error.
export class ApiError extends Error {
  status: number;
  code: string;
  field: string;
  constructor(status: number, code: string, message: string, field = "") {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface CallOptions {
  method?: string;
  body?: BodyInit;
  contentType?: string;
  query?: Record<string, string | number | undefined>;
  // Send X-Vrsky-Tenant: the admin acting on a tenant's integrations.
  scoped?: boolean;
}

export class Client {
  session: Session;
  constructor(session: Session) {
    this.session = session;
  }

  async call<T>(path: string, opts: CallOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.session.key}` };
    if (opts.contentType) headers["Content-Type"] = opts.contentType;
    if (opts.scoped && this.session.admin && this.session.tenant) headers["X-Vrsky-Tenant"] = this.session.tenant;
    let url = "/api/v1" + path;
    if (opts.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) if (v !== undefined && v !== "") q.set(k, String(v));
      const s = q.toString();
      if (s) url += (url.includes("?") ? "&" : "?") + s;
    }
    let resp: Response;
    try {
      resp = await fetch(url, { method: opts.method ?? "GET", headers, body: opts.body });
    } catch (e) {
      throw new ApiError(0, "network", `the server did not answer: ${(e as Error).message}`);
    }
    const text = await resp.text();
    let doc: unknown = undefined;
    if (text) {
      try {
        doc = JSON.parse(text);
      } catch {
        doc = undefined;
      }
    }
    if (!resp.ok) {
      const err = (doc as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
      throw new ApiError(resp.status, err?.code ?? "http_" + resp.status, err?.message ?? (text || resp.statusText), err?.field ?? "");
    }
    return doc as T;
  }

  json<T>(method: string, path: string, body: unknown, query?: CallOptions["query"], scoped = false): Promise<T> {
    return this.call<T>(path, { method, body: JSON.stringify(body), contentType: "application/json", query, scoped });
  }
}

// ---- the API's documents (api/openapi.json) ----

export interface Quotas {
  max_integrations?: number;
  max_messages_per_second?: number;
  max_storage_bytes?: number;
}
export interface TenantUsage {
  integrations: number;
  storage_bytes: number;
  streams: number;
  consumers: number;
}
export interface Tenant {
  name: string;
  display_name?: string;
  quotas: Quotas;
  created_at: string;
  placement?: string;
  usage?: TenantUsage;
}
export interface TenantCreated extends Tenant {
  api_key: string;
  key_id: string;
}
export interface Key {
  id: string;
  tenant: string;
  name?: string;
  created_at: string;
}
export interface KeyCreated extends Key {
  api_key: string;
}

export interface StageSpec {
  name?: string;
  connector: string;
  config?: Record<string, unknown>;
}
export interface SinkSpec extends StageSpec {
  name: string;
  when?: string;
}
export interface Spec {
  name: string;
  description?: string;
  source: StageSpec;
  steps?: StageSpec[];
  sinks: SinkSpec[];
  retry?: { max_attempts?: number; initial_backoff?: string; max_backoff?: string };
}
export interface SinkStatus {
  name: string;
  delivered_total: number;
  failures_total: number;
  dead_lettered_total: number;
  dlq_depth: number;
  pending: number;
  in_flight: number;
}
export interface Status {
  state: string;
  error?: string;
  starting?: boolean;
  ingested_total: number;
  pending: number;
  dlq_depth: number;
  sinks: SinkStatus[];
}
export interface Integration {
  tenant: string;
  name: string;
  desired: string;
  spec: Spec;
  status: Status;
  revision: number;
  created_at: string;
  updated_at: string;
}

export interface StageRecord {
  stage: string;
  status: string;
  at: string;
  attempt?: number;
  error?: string;
  outputs?: string[];
}
export interface MessageTrace {
  id: string;
  integration: string;
  state: string;
  stages: StageRecord[];
}
export interface DeadLetter {
  id: string;
  message_id: string;
  stage: string;
  error: string;
  attempts: number;
  attempt_log: { attempt: number; at: string; error: string }[];
  at: string;
  size: number;
  headers: Record<string, string>;
  payload_ref?: string;
  payload_base64?: string;
  payload_text?: string;
}

export interface ConnectorVersion {
  version: string;
  digest?: string;
  size?: number;
  deprecated: boolean;
  signed_by?: string;
  created_at?: string;
  usage: number;
  manifest?: Record<string, unknown>;
}
export interface Capabilities {
  nats?: boolean;
  objects?: boolean;
  kv?: boolean;
  http_hosts?: string[];
  wasi_file_stubs?: boolean;
}
export interface Connector {
  name: string;
  version: string;
  kind: "source" | "step" | "sink";
  description?: string;
  builtin: boolean;
  config_schema?: JSONSchema;
  category?: string;
  origin?: string;
  versions?: ConnectorVersion[];
  capabilities?: Capabilities;
  digest?: string;
  author?: string;
  license?: string;
  tags?: string[];
  visibility?: string;
  uploader?: string;
  usage?: number;
  deprecated?: boolean;
}

export interface JSONSchema {
  type?: string | string[];
  properties?: Record<string, JSONSchema>;
  required?: string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  items?: JSONSchema;
  oneOf?: JSONSchema[];
  anyOf?: JSONSchema[];
  additionalProperties?: boolean | JSONSchema;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  format?: string;
}
