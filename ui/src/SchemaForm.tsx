// SchemaForm renders a form for a connector's config from its JSON Schema:
// required fields marked, enums as selects, defaults as placeholders,
// descriptions as help. Every input carries data-field, the API's name for
// it (sinks[0].config.url), so that a validation error highlights it.
import { useState } from "react";
import type { JSONSchema } from "./api";
import { cls, inputCls } from "./ui";

type Obj = Record<string, unknown>;

export function domId(field: string) {
  return "f-" + field.replace(/[^A-Za-z0-9_-]+/g, "-");
}

// matches reports whether the API's error field names this field or
// something inside it.
export function matches(errorField: string | undefined, field: string) {
  if (!errorField) return false;
  return errorField === field || errorField.startsWith(field + ".") || errorField.startsWith(field + "[");
}

function typeOf(s: JSONSchema): string {
  if (Array.isArray(s.type)) return s.type.find((t) => t !== "null") ?? "string";
  if (s.type) return s.type;
  if (s.properties) return "object";
  if (s.enum) return "string";
  return "";
}

function variantsOf(s: JSONSchema): JSONSchema[] | null {
  const vs = s.oneOf ?? s.anyOf;
  if (!vs || !vs.every((v) => v.properties?.type?.const !== undefined)) return null;
  return vs;
}

interface Props {
  schema: JSONSchema;
  value: Obj | undefined;
  onChange: (v: Obj) => void;
  field: string; // the API's name of this object (sinks[0].config)
  error?: { field: string; message: string };
}

export default function SchemaForm({ schema, value, onChange, field, error }: Props) {
  const v = value ?? {};
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const names = Object.keys(props).sort((a, b) => Number(required.has(b)) - Number(required.has(a)));
  if (names.length === 0 && typeOf(schema) !== "object") return null;
  if (names.length === 0) {
    return <JSONInput label="config (JSON)" field={field} value={value} onChange={(x) => onChange((x as Obj) ?? {})} error={error} help={schema.description} />;
  }
  const set = (k: string, x: unknown) => {
    const next = { ...v };
    if (x === undefined || x === "") delete next[k];
    else next[k] = x;
    onChange(next);
  };
  return (
    <div className="grid gap-x-3 md:grid-cols-2">
      {names.map((k) => (
        <Prop key={k} name={k} schema={props[k]} required={required.has(k)} value={v[k]} onChange={(x) => set(k, x)} field={`${field}.${k}`} error={error} />
      ))}
    </div>
  );
}

function Prop({ name, schema, required, value, onChange, field, error }: { name: string; schema: JSONSchema; required: boolean; value: unknown; onChange: (v: unknown) => void; field: string; error?: Props["error"] }) {
  const id = domId(field);
  const bad = matches(error?.field, field);
  const t = typeOf(schema);
  const dflt = schema.default !== undefined && typeof schema.default !== "object" ? String(schema.default) : undefined;
  const help = (
    <>
      {schema.description}
      {dflt !== undefined && dflt !== "" && <span className="text-slate-500"> Default: {dflt}.</span>}
    </>
  );
  const label = (
    <>
      <code>{name}</code>
      {required && (
        <span className="text-red-700" aria-label="required">
          {" "}
          *
        </span>
      )}
    </>
  );
  const ic = cls(inputCls, bad && "border-red-600 ring-2 ring-red-300");
  const common = { id, "data-field": field, "aria-invalid": bad || undefined, "aria-describedby": id + "-help", required };

  let input;
  const variants = variantsOf(schema);
  if (variants) {
    const cur = (value as Obj | undefined)?.type as string | undefined;
    const chosen = variants.find((x) => x.properties!.type.const === cur);
    return (
      <fieldset className={cls("col-span-full mb-3 rounded border p-2", bad ? "border-red-600" : "border-slate-200")} data-field={field}>
        <legend className="px-1 text-sm font-medium">{label}</legend>
        <select
          {...common}
          id={domId(field + ".type")}
          data-field={field + ".type"}
          className={ic}
          value={cur ?? ""}
          onChange={(e) => onChange(e.target.value ? { type: e.target.value } : undefined)}
        >
          <option value="">(none)</option>
          {variants.map((x) => (
            <option key={String(x.properties!.type.const)} value={String(x.properties!.type.const)}>
              {String(x.properties!.type.const)} {x.description ? `: ${x.description}` : ""}
            </option>
          ))}
        </select>
        <p className="mb-2 mt-1 text-xs text-slate-600">{schema.description}</p>
        {chosen && (
          <SchemaForm
            schema={{ ...chosen, properties: Object.fromEntries(Object.entries(chosen.properties!).filter(([k]) => k !== "type")) }}
            value={value as Obj}
            onChange={(x) => onChange({ ...x, type: cur })}
            field={field}
            error={error}
          />
        )}
        {bad && <p className="text-xs font-medium text-red-700" role="alert">{error!.message}</p>}
      </fieldset>
    );
  }
  if (t === "object" && schema.properties) {
    return (
      <fieldset className={cls("col-span-full mb-3 rounded border p-2", bad ? "border-red-600" : "border-slate-200")} data-field={field}>
        <legend className="px-1 text-sm font-medium">{label}</legend>
        <p className="mb-2 text-xs text-slate-600">{schema.description}</p>
        <SchemaForm schema={schema} value={value as Obj} onChange={(x) => onChange(Object.keys(x).length ? x : undefined)} field={field} error={error} />
        {bad && <p className="text-xs font-medium text-red-700" role="alert">{error!.message}</p>}
      </fieldset>
    );
  }
  if (schema.enum) {
    input = (
      <select {...common} className={ic} value={value === undefined ? "" : String(value)} onChange={(e) => onChange(e.target.value === "" ? undefined : schema.enum!.find((x) => String(x) === e.target.value))}>
        <option value="">{dflt !== undefined ? `(default: ${dflt})` : "(choose)"}</option>
        {schema.enum.map((x) => (
          <option key={String(x)} value={String(x)}>
            {String(x)}
          </option>
        ))}
      </select>
    );
  } else if (t === "boolean") {
    input = (
      <div>
        <input {...common} type="checkbox" className="h-4 w-4" checked={value === undefined ? schema.default === true : Boolean(value)} onChange={(e) => onChange(e.target.checked === (schema.default === true) ? undefined : e.target.checked)} />
      </div>
    );
  } else if (t === "integer" || t === "number") {
    input = (
      <input
        {...common}
        type="number"
        className={ic}
        min={schema.minimum}
        max={schema.maximum}
        step={t === "integer" ? 1 : "any"}
        placeholder={dflt}
        value={value === undefined ? "" : String(value)}
        onChange={(e) => onChange(e.target.value === "" ? undefined : Number(e.target.value))}
      />
    );
  } else if (t === "array" && typeOf(schema.items ?? {}) === "string" && !schema.items?.enum) {
    input = (
      <textarea
        {...common}
        className={ic}
        rows={2}
        placeholder="one per line"
        value={Array.isArray(value) ? value.join("\n") : ""}
        onChange={(e) => {
          const xs = e.target.value.split("\n");
          onChange(xs.length === 1 && xs[0] === "" ? undefined : xs);
        }}
      />
    );
  } else if (t === "string") {
    const long = name === "query" || name === "expr" || name === "template" || name === "script";
    input = long ? (
      <textarea {...common} className={cls(ic, "font-mono")} rows={3} placeholder={dflt} value={(value as string) ?? ""} onChange={(e) => onChange(e.target.value)} />
    ) : (
      <input {...common} type="text" className={ic} placeholder={dflt} value={(value as string) ?? ""} onChange={(e) => onChange(e.target.value)} />
    );
  } else {
    return <JSONInput label={label} field={field} value={value} onChange={onChange} error={error} help={schema.description} />;
  }
  return (
    <div className="mb-3">
      <label htmlFor={id} className="mb-1 block text-sm font-medium">
        {label}
      </label>
      {input}
      <p id={id + "-help"} className="mt-1 text-xs text-slate-600">
        {help}
      </p>
      {bad && (
        <p className="mt-1 text-xs font-medium text-red-700" role="alert" data-testid="field-error">
          {error!.message}
        </p>
      )}
    </div>
  );
}

// JSONInput edits a value the form cannot break down (maps, arrays of
// objects) as JSON.
function JSONInput({ label, field, value, onChange, error, help }: { label: React.ReactNode; field: string; value: unknown; onChange: (v: unknown) => void; error?: Props["error"]; help?: string }) {
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value, null, 2));
  const [bad, setBad] = useState("");
  const id = domId(field);
  const err = matches(error?.field, field);
  return (
    <div className="col-span-full mb-3">
      <label htmlFor={id} className="mb-1 block text-sm font-medium">
        {label} <span className="text-xs font-normal text-slate-500">(JSON)</span>
      </label>
      <textarea
        id={id}
        data-field={field}
        aria-invalid={err || undefined}
        className={cls(inputCls, "font-mono", (err || bad) && "border-red-600")}
        rows={3}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === "") {
            setBad("");
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(e.target.value));
            setBad("");
          } catch (x) {
            setBad((x as Error).message);
          }
        }}
      />
      {help && <p className="mt-1 text-xs text-slate-600">{help}</p>}
      {bad && <p className="mt-1 text-xs text-red-700">{bad}</p>}
      {err && <p className="mt-1 text-xs font-medium text-red-700" role="alert">{error!.message}</p>}
    </div>
  );
}
