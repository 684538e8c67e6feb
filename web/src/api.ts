// The HTTP API, same origin as the page. The access token lives in memory only; the refresh
// token in this tab's sessionStorage, so that a reload keeps the trainee signed in (see
// docs/adr/0001-web-frontend.md for why not localStorage or a cookie).

export interface TokenPair {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

export interface Me {
  user_id: string;
  tenant_id: string;
  email: string;
  display_name: string;
  role: "admin" | "manager" | "trainee";
}

/** An API refusal: ``code`` and ``message`` from the one error body every route answers. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null = null,
  ) {
    super(message);
  }
}

// What a person reads for the codes whose server message is written for developers.
const PLAIN: Record<string, string> = {
  bad_credentials: "The company, e-mail or password is wrong.",
  invalid_refresh_token: "Your sign-in has expired. Please sign in again.",
  unauthenticated: "Please sign in.",
  forbidden: "Your role does not allow this.",
  rate_limited: "Too many requests just now. Wait a moment and try again.",
  invalid_invitation: "This invitation link is unknown, already used or expired.",
  network: "The server cannot be reached. Check your connection.",
  internal: "Something went wrong on the server.",
};

export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const plain = PLAIN[error.code];
    const base = plain ?? sentence(error.message);
    const detail = plain && error.code !== "network" ? ` (${error.message})` : "";
    const rid = error.requestId && error.status >= 500 ? ` Reference: ${error.requestId}.` : "";
    return `${base}${error.code === "forbidden" ? detail : ""}${rid}`;
  }
  return error instanceof Error ? sentence(error.message) : String(error);
}

// Codes whose refusal is about one field of the request.
const FIELD_OF_CODE: Record<string, string> = { unknown_team: "team", unknown_user: "user_id", team_exists: "name" };

/** The field a refusal is about, and what to say there: a route's own code (``unknown_team``)
 * or the field a 422's message names (``body.criteria.0.weight: ...``, ``query.from: ...``);
 * null when it is about the whole request. */
export function fieldError(error: unknown): { field: string; message: string } | null {
  if (!(error instanceof ApiError) || error.status < 400 || error.status >= 500) return null;
  const byCode = FIELD_OF_CODE[error.code];
  if (byCode) return { field: byCode, message: describeError(error) };
  const m = error.status === 422 ? /^(?:body|query)\.([\w.]+): (?:Value error, )?(?:\1: )?([\s\S]*)$/.exec(error.message) : null;
  return m ? { field: m[1], message: sentence(m[2]) } : null;
}

export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return "Something went wrong.";
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

const REFRESH_KEY = "salesboost.refresh";

type Listener = (signedIn: boolean) => void;

export class Api {
  private access: string | null = null;
  private accessExpiresAt = 0;
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();

  constructor(private readonly storage: Storage | null = globalThis.sessionStorage ?? null) {}

  get hasSession(): boolean {
    return this.access !== null || this.storage?.getItem(REFRESH_KEY) != null;
  }

  onSessionChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  adopt(pair: TokenPair): void {
    this.access = pair.access_token;
    // Refreshed a little before it expires, so a request never carries a token about to lapse.
    this.accessExpiresAt = Date.now() + Math.max(10, pair.expires_in - 30) * 1000;
    this.storage?.setItem(REFRESH_KEY, pair.refresh_token);
    this.listeners.forEach((l) => l(true));
  }

  forget(): void {
    this.access = null;
    this.storage?.removeItem(REFRESH_KEY);
    this.listeners.forEach((l) => l(false));
  }

  async login(tenant: string, email: string, password: string): Promise<void> {
    this.adopt(await this.send<TokenPair>("POST", "/v1/auth/login", { tenant, email, password }, false));
  }

  async acceptInvite(invitationToken: string, password: string): Promise<void> {
    this.adopt(
      await this.send<TokenPair>(
        "POST",
        "/v1/auth/accept-invite",
        { invitation_token: invitationToken, password },
        false,
      ),
    );
  }

  async logout(): Promise<void> {
    const refresh = this.storage?.getItem(REFRESH_KEY);
    this.forget();
    if (refresh) {
      await this.send("POST", "/v1/auth/logout", { refresh_token: refresh }, false).catch(() => {});
    }
  }

  /** Trade the refresh token for a new pair (once at a time, however many callers ask). */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        const token = this.storage?.getItem(REFRESH_KEY);
        if (!token) return false;
        try {
          this.adopt(await this.send<TokenPair>("POST", "/v1/auth/refresh", { refresh_token: token }, false));
          return true;
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) this.forget();
          throw error;
        }
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  get<T>(path: string): Promise<T> {
    return this.send<T>("GET", path);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.send<T>("POST", path, body ?? {});
  }
  put<T>(path: string, body: unknown): Promise<T> {
    return this.send<T>("PUT", path, body);
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.send<T>("PATCH", path, body);
  }
  delete(path: string): Promise<void> {
    return this.send<void>("DELETE", path);
  }

  /** A multipart upload with progress (fetch cannot report upload progress). */
  upload<T>(path: string, file: Blob, name: string, onProgress?: (fraction: number) => void): Promise<T> {
    const attempt = async (): Promise<T> => {
      await this.ensureAccess();
      return new Promise<T>((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", path);
        if (this.access) xhr.setRequestHeader("Authorization", `Bearer ${this.access}`);
        xhr.upload.onprogress = (e) => e.lengthComputable && onProgress?.(e.loaded / e.total);
        xhr.onerror = () => reject(new ApiError(0, "network", "the server cannot be reached"));
        xhr.onload = () => {
          const body = xhr.responseText ? safeJson(xhr.responseText) : null;
          if (xhr.status >= 200 && xhr.status < 300) resolve(body as T);
          else reject(errorFrom(xhr.status, body, xhr.getResponseHeader("X-Request-ID")));
        };
        const form = new FormData();
        form.append("file", file, name);
        xhr.send(form);
      });
    };
    return attempt();
  }

  private async ensureAccess(): Promise<void> {
    if (!this.access || Date.now() >= this.accessExpiresAt) {
      if (!(await this.refresh())) throw new ApiError(401, "unauthenticated", "please sign in");
    }
  }

  private async send<T>(method: string, path: string, body?: unknown, authenticated = true): Promise<T> {
    if (authenticated) await this.ensureAccess();
    const once = async (): Promise<Response> => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (authenticated && this.access) headers.Authorization = `Bearer ${this.access}`;
      try {
        return await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch {
        throw new ApiError(0, "network", "the server cannot be reached");
      }
    };
    let response = await once();
    if (response.status === 401 && authenticated && (await this.refresh().catch(() => false))) {
      response = await once(); // the token lapsed in flight (or the server restarted)
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const data = text ? safeJson(text) : null;
    if (!response.ok) throw errorFrom(response.status, data, response.headers.get("X-Request-ID"));
    return data as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorFrom(status: number, body: unknown, requestId: string | null): ApiError {
  const error = (body as { error?: { code?: string; message?: string; request_id?: string } } | null)?.error;
  return new ApiError(
    status,
    error?.code ?? (status === 403 ? "forbidden" : "http_error"),
    error?.message ?? `the server answered ${status}`,
    error?.request_id ?? requestId,
  );
}

export const api = new Api();
