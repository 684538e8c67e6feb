// Small pieces every page uses: links, loading and error states, toasts, initials.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { describeError } from "./api";
import { BASE, onLinkClick } from "./router";

export function Link(props: { to: string; class?: string; children: ComponentChildren; "aria-current"?: "page" }) {
  return (
    <a href={`${BASE}${props.to}`} class={props.class} aria-current={props["aria-current"]} onClick={(e) => onLinkClick(e, props.to)}>
      {props.children}
    </a>
  );
}

export function ErrorNote(props: { error: unknown }) {
  if (!props.error) return null;
  return (
    <p class="error" role="alert">
      {describeError(props.error)}
    </p>
  );
}

export interface Loaded<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Load once (and again on ``reload``); the error stays until the next success. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load()
      .then((d) => live && (setData(d), setError(null)))
      .catch((e) => live && setError(e))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { data, error, loading, reload };
}

export function Loading(props: { what?: string }) {
  return (
    <p class="muted" role="status">
      Loading{props.what ? ` ${props.what}` : ""}…
    </p>
  );
}

export function initials(name: string): string {
  const parts = name.split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] ?? "?") + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

export function Avatar(props: { name: string; hue?: number }) {
  return (
    <span class="avatar" aria-hidden="true" style={{ background: `hsl(${props.hue ?? 210} 55% 34%)` }}>
      {initials(props.name)}
    </span>
  );
}

export function hueOf(key: string): number {
  let h = 0;
  for (const c of key) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function pct(value: number | null | undefined): string {
  return value == null ? "—" : `${Math.round(value * 100)} %`;
}

// --- toasts ------------------------------------------------------------------------------

type Toast = { id: number; text: string };
let toastListeners: ((t: Toast[]) => void)[] = [];
let toasts: Toast[] = [];
let nextToast = 1;

export function toast(text: string, onNotify?: (text: string) => void): void {
  onNotify?.(text);
  const t = { id: nextToast++, text };
  toasts = [...toasts, t];
  toastListeners.forEach((l) => l(toasts));
  setTimeout(() => {
    toasts = toasts.filter((x) => x.id !== t.id);
    toastListeners.forEach((l) => l(toasts));
  }, 8000);
}

export function Toasts() {
  const [list, setList] = useState<Toast[]>(toasts);
  useEffect(() => {
    toastListeners.push(setList);
    return () => {
      toastListeners = toastListeners.filter((l) => l !== setList);
    };
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {list.map((t) => (
        <div class="toast" key={t.id}>
          {t.text}
        </div>
      ))}
    </div>
  );
}
