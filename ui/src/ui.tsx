// Small building blocks shared by the pages.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError } from "./api";

export function cls(...c: (string | false | undefined | null)[]) {
  return c.filter(Boolean).join(" ");
}

type Variant = "primary" | "secondary" | "danger";
const variants: Record<Variant, string> = {
  primary: "bg-sky-700 text-white hover:bg-sky-800 disabled:bg-slate-400",
  secondary: "bg-white text-slate-800 border border-slate-300 hover:bg-slate-100 disabled:text-slate-400",
  danger: "bg-red-700 text-white hover:bg-red-800 disabled:bg-slate-400",
};

export function Button(props: React.ButtonHTMLAttributes<HTMLButtonElement> & { variant?: Variant }) {
  const { variant = "secondary", className, ...rest } = props;
  return (
    <button
      type="button"
      {...rest}
      className={cls("rounded px-3 py-1.5 text-sm font-medium", variants[variant], className)}
    />
  );
}

// ErrorBox shows an API error: its message and, when the API named one,
// the field.
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as ApiError;
  return (
    <div role="alert" className="my-2 rounded border border-red-300 bg-red-50 p-2 text-sm text-red-900" data-testid="error">
      <span className="font-medium">{e.message || String(error)}</span>
      {e.field ? (
        <span>
          {" "}
          (field <code className="rounded bg-red-100 px-1" data-testid="error-field">{e.field}</code>)
        </span>
      ) : null}
    </div>
  );
}

export function Card({ title, children, actions }: { title?: ReactNode; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="mb-4 rounded-lg border border-slate-200 bg-white p-4 shadow-sm">
      {(title || actions) && (
        <div className="mb-3 flex flex-wrap items-center justify-between gap-2">
          {title && <h2 className="text-lg font-semibold">{title}</h2>}
          {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
        </div>
      )}
      {children}
    </section>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <Button
      aria-label={label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          // Clipboard refused (no permission, insecure origin): select the
          // text instead so that Ctrl-C copies it.
          const el = document.querySelector<HTMLElement>("[data-copy-source]");
          if (el) window.getSelection()?.selectAllChildren(el);
        }
        setDone(true);
      }}
    >
      {done ? "Copied" : label}
    </Button>
  );
}

const focusable = "a[href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), button:not([disabled]), summary, [tabindex]:not([tabindex='-1'])";

// Modal is a dialog that takes focus, keeps it (Tab and Shift+Tab cycle
// through its controls), closes on Escape and gives focus back on close.
// Only the topmost dialog answers the keys, so a confirmation over a
// dialog closes alone.
export function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const prev = document.activeElement as HTMLElement | null;
    const controls = () => [...(ref.current?.querySelectorAll<HTMLElement>(focusable) ?? [])];
    // The first form control, else the first control past the Close button.
    const first = ref.current?.querySelector<HTMLElement>("input, select, textarea") ?? controls()[1] ?? controls()[0];
    first?.focus();
    const onKey = (e: KeyboardEvent) => {
      const dialogs = document.querySelectorAll("[role=dialog]");
      if (dialogs[dialogs.length - 1] !== ref.current) return;
      if (e.key === "Escape") {
        e.preventDefault();
        onClose();
        return;
      }
      if (e.key !== "Tab") return;
      const c = controls();
      if (c.length === 0) return;
      const i = c.indexOf(document.activeElement as HTMLElement);
      if (e.shiftKey && i <= 0) {
        e.preventDefault();
        c[c.length - 1].focus();
      } else if (!e.shiftKey && (i === -1 || i === c.length - 1)) {
        e.preventDefault();
        c[0].focus();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      prev?.focus();
    };
  }, [onClose]);
  return (
    <div className="fixed inset-0 z-50 flex items-center justify-center bg-black/40 p-2">
      <div ref={ref} role="dialog" aria-modal="true" aria-label={title} className="max-h-[90vh] w-full max-w-2xl overflow-auto rounded-lg bg-white p-4 shadow-xl">
        <div className="mb-3 flex items-center justify-between">
          <h2 className="text-lg font-semibold">{title}</h2>
          <Button aria-label="Close" onClick={onClose}>
            ✕
          </Button>
        </div>
        {children}
      </div>
    </div>
  );
}

export function Confirm({ title, text, confirm, onConfirm, onClose }: { title: string; text: ReactNode; confirm: string; onConfirm: () => Promise<void> | void; onClose: () => void }) {
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Modal title={title} onClose={onClose}>
      <p className="mb-3 text-sm">{text}</p>
      <ErrorBox error={err} />
      <div className="flex justify-end gap-2">
        <Button onClick={onClose}>Cancel</Button>
        <Button
          variant="danger"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await onConfirm();
              onClose();
            } catch (e) {
              setErr(e);
              setBusy(false);
            }
          }}
        >
          {confirm}
        </Button>
      </div>
    </Modal>
  );
}

export function Field({ label, help, children, htmlFor, error }: { label: ReactNode; help?: ReactNode; children: ReactNode; htmlFor?: string; error?: string }) {
  return (
    <div className="mb-3">
      <label htmlFor={htmlFor} className="mb-1 block text-sm font-medium">
        {label}
      </label>
      {children}
      {help && <p className="mt-1 text-xs text-slate-600">{help}</p>}
      {error && (
        <p className="mt-1 text-xs font-medium text-red-700" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

export const inputCls = "w-full rounded border border-slate-300 bg-white px-2 py-1.5 text-sm";

export function usePoll(fn: () => void | Promise<void>, ms: number, deps: unknown[]) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        await saved.current();
      } finally {
        if (!stop) timer = window.setTimeout(tick, ms);
      }
    };
    tick();
    return () => {
      stop = true;
      window.clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}

export function fmtTime(s?: string) {
  if (!s) return "";
  const d = new Date(s);
  return isNaN(d.getTime()) ? s : d.toLocaleString();
}

export function fmtBytes(n?: number) {
  if (n === undefined) return "";
  if (n < 1024) return `${n} B`;
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${u[i]}`;
}
