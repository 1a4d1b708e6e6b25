// The REST API, as any client calls it: the token from sessionStorage (never a URL, never a
// log), JSON in and out, errors as {status, message, field}.

const KEY = "qhronos.token";

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
    this.field = fieldOf(message);
  }
}

/** The field an API error names: its messages start with the field ("start_time: …",
 * "action.params.url: …", "schedule: BYDAY …"). */
export function fieldOf(message) {
  // A first word that no form names (plain sentences) finds no field and is shown at the top.
  const m = /^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*|\[\d+\])*)(?=[: ])/.exec(message || "");
  return m ? m[1] : null;
}

/** Called when the token is refused (401): the app shows the sign-in page. */
let onUnauthorized = () => {};
export function setUnauthorized(f) { onUnauthorized = f; }

export async function api(method, path, body, t = token.get()) {
  const headers = { Accept: "application/json" };
  if (t) headers.Authorization = "Bearer " + t;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "the server does not answer: " + e.message);
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let v = null;
  try { v = text ? JSON.parse(text) : null; } catch { v = { error: text }; }
  if (!r.ok) {
    if (r.status === 401 && t === token.get()) onUnauthorized();
    throw new ApiError(r.status, (v && v.error) || `${method} ${path}: HTTP ${r.status}`);
  }
  return v;
}

export const get = (p) => api("GET", p);
export const post = (p, b = {}) => api("POST", p, b);

/** A query string from an object, skipping empty values. */
export function qs(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
}
