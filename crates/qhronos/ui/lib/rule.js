// A recurrence rule in three forms that stay in step: the builder's object (the API's JSON
// form: {frequency, interval, by_day, …}), the RRULE string, and the JSON text. The server
// stays the judge: what it refuses is shown at the field.

export const FREQS = ["secondly", "minutely", "hourly", "daily", "weekly", "monthly", "yearly"];
export const DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

// JSON key → RRULE part; lists are comma-joined.
const PARTS = [
  ["frequency", "FREQ"], ["interval", "INTERVAL"], ["count", "COUNT"], ["until", "UNTIL"],
  ["by_month", "BYMONTH"], ["by_week_no", "BYWEEKNO"], ["by_year_day", "BYYEARDAY"],
  ["by_month_day", "BYMONTHDAY"], ["by_day", "BYDAY"], ["by_hour", "BYHOUR"],
  ["by_minute", "BYMINUTE"], ["by_set_pos", "BYSETPOS"], ["week_start", "WKST"],
];
const LISTS = new Set(["by_month", "by_week_no", "by_year_day", "by_month_day", "by_day", "by_hour", "by_minute", "by_set_pos"]);
const STRINGS = new Set(["by_day", "week_start", "frequency", "until"]);

/** The rule object as an RRULE string ("" when it has no frequency). */
export function toRRule(r) {
  if (!r || !r.frequency) return "";
  const out = [];
  for (const [k, p] of PARTS) {
    let v = r[k];
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && !v.length)) continue;
    if (k === "interval" && Number(v) === 1) continue;
    if (k === "frequency") v = String(v).toUpperCase();
    if (k === "until") v = untilToRRule(v);
    out.push(`${p}=${Array.isArray(v) ? v.join(",") : v}`);
  }
  return out.join(";");
}

/** An RRULE string as the rule object; throws with the part it cannot read. */
export function fromRRule(text) {
  const r = {};
  const t = text.trim().replace(/^RRULE:/i, "");
  if (!t) return r;
  for (const part of t.split(";")) {
    if (!part) continue;
    const [p, v] = part.split("=");
    const e = PARTS.find(([, q]) => q === (p || "").toUpperCase());
    if (!e || v === undefined) throw new Error(`'${part}' is not an RRULE part (FREQ, INTERVAL, COUNT, UNTIL, BYDAY, …)`);
    const k = e[0];
    if (k === "frequency") r[k] = v.toLowerCase();
    else if (k === "until") r[k] = untilFromRRule(v);
    else if (LISTS.has(k)) r[k] = v.split(",").filter(Boolean).map((x) => (STRINGS.has(k) ? x.toUpperCase() : Number(x)));
    else r[k] = STRINGS.has(k) ? v.toUpperCase() : Number(v);
  }
  return r;
}

/** The rule object with empty parts dropped (what the JSON mode shows). */
export function clean(r) {
  const o = {};
  for (const [k] of PARTS) {
    const v = r[k];
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && !v.length)) continue;
    o[k] = v;
  }
  return o;
}

function untilToRRule(v) {
  const d = new Date(v);
  if (isNaN(d)) return v;
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

function untilFromRRule(v) {
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})Z?)?$/.exec(v);
  if (!m) return v;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4] || "00"}:${m[5] || "00"}:${m[6] || "00"}Z`;
}

/** "1,15,-1" → [1, 15, -1]; throws naming the bad item. */
export function numbers(text, label) {
  return text.split(/[\s,]+/).filter(Boolean).map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n)) throw new Error(`${label}: '${x}' is not a whole number`);
    return n;
  });
}
