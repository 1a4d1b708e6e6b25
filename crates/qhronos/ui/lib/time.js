// Times: shown in the browser's zone, with UTC on hover (title) and in datetime.
import { h } from "./dom.js";

export const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const local = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** "2026-12-07 14:05:00 UTC" */
export function utc(iso) {
  return new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A <time> in the browser's zone with UTC on hover; "—" for none. */
export function when(iso) {
  if (!iso) return h("span.muted", "—");
  const d = new Date(iso);
  return h("time", { datetime: d.toISOString(), title: utc(iso) }, local.format(d));
}

/** Local and UTC side by side (for next runs and previews). */
export function both(iso) {
  if (!iso) return h("span.muted", "—");
  return h("span.both", when(iso), h("small.muted", utc(iso)));
}

/** "in 5 min", "3 h ago". */
export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const s = Math.round((new Date(iso).getTime() - now) / 1000);
  const a = Math.abs(s);
  const t = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  if (a < 2) return "just now";
  return s > 0 ? `in ${t}` : `${t} ago`;
}

/** The offset of `zone` at instant `ms`, in minutes east of UTC. */
export function offsetAt(zone, ms) {
  const f = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
}

/** A wall time "YYYY-MM-DDTHH:MM[:SS]" in `zone` as RFC 3339 with that zone's offset (a time
 * in a spring-forward gap takes the offset after it, as the server's rule does). */
export function zoned(wall, zone) {
  const [d, t = "00:00"] = wall.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [hh, mi, ss = 0] = t.split(":").map(Number);
  const guess = Date.UTC(y, mo - 1, da, hh, mi, ss);
  let off = offsetAt(zone, guess);
  off = offsetAt(zone, guess - off * 60000);
  const sign = off < 0 ? "-" : "+";
  const a = Math.abs(off);
  const pad = (n) => String(n).padStart(2, "0");
  return `${y}-${pad(mo)}-${pad(da)}T${pad(hh)}:${pad(mi)}:${pad(ss)}${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** An instant as the wall time "YYYY-MM-DDTHH:MM" in `zone` (for datetime-local inputs). */
export function wallIn(iso, zone) {
  const ms = new Date(iso).getTime();
  const d = new Date(ms + offsetAt(zone, ms) * 60000);
  return d.toISOString().slice(0, 16);
}

/** Every IANA zone the browser knows. */
export function zones() {
  try { return Intl.supportedValuesOf("timeZone"); } catch { return ["UTC", browserZone]; }
}
