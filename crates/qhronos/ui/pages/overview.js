// Overview: scheduler health, counts by status (each a link to the filtered deliveries),
// deliveries per minute (last hour) and per hour (last day) by outcome, lateness, what fires
// in the next hour, and the failures that need attention.
import { h, fill } from "../lib/dom.js";
import { get, qs } from "../lib/api.js";
import { when, relative, both } from "../lib/time.js";
import { badge } from "../lib/list.js";
import { stackedBars, legend } from "../lib/chart.js";

const STATUSES = ["pending", "scheduled", "completed", "failed", "missed", "cancelled"];
const hhmm = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export async function mount({ main, me }) {
  const health = h("section");
  const counts = h("section");
  const charts = h("section.grid2");
  const next = h("section");
  const failures = h("section");

  async function load() {
    const now = Date.now();
    const iso = (ms) => new Date(ms).toISOString();
    const [st, scoped, minute, hour, soon, failed] = await Promise.all([
      get("/status"),
      // /status counts the whole store; a scoped token gets its own figures.
      me.scope ? get("/occurrences/counts") : null,
      get("/analytics" + qs({ bucket: "minute", from: iso(now - 3600000), to: iso(now) })),
      get("/analytics" + qs({ bucket: "hour", from: iso(now - 86400000), to: iso(now) })),
      get("/occurrences" + qs({ status: "pending", from: iso(now), to: iso(now + 3600000), limit: 200 })),
      get("/occurrences" + qs({ status: "failed", limit: 10 })),
    ]);
    const sch = st.scheduler;
    const cur = hour.buckets[hour.buckets.length - 1] || { lateness_ms: {} };
    fill(health, h("div.tiles",
      h("div.tile", h("span.muted", "Scheduler"), h("strong", badge(sch.healthy ? "ok" : "unhealthy")), h("small.muted", "heartbeat ", sch.heartbeat_at ? relative(sch.heartbeat_at) : "never")),
      h("div.tile", h("span.muted", "Lateness p50 / p99"), h("strong", `${cur.lateness_ms.p50 ?? "—"} / ${cur.lateness_ms.p99 ?? "—"}`), h("small.muted", "ms, this hour")),
      h("div.tile", h("span.muted", "Oldest overdue"), h("strong", st.queue.oldest_overdue_seconds == null ? "none" : `${Math.round(st.queue.oldest_overdue_seconds)} s`)),
      h("div.tile", h("span.muted", "Version"), h("strong", st.version), h("small.muted", st.store, " · started ", relative(st.started_at)))));
    const byStatus = scoped || st.occurrences;
    fill(counts, byStatus ? [h("h2", "Occurrences by status"), h("div.tiles", { id: "counts" }, STATUSES.map((s) =>
      h("a.tile", { href: "/ui/deliveries?status=" + s, "data-status": s }, h("span", badge(s)), h("strong", byStatus[s] ?? 0))))] : null);
    const minuteLabel = (t) => hhmm.format(new Date(t));
    const hourLabel = (t) => hhmm.format(new Date(t));
    fill(charts,
      h("div", h("h2", "Deliveries per minute, last hour"), stackedBars(minute.buckets, { label: minuteLabel, title: "Deliveries per minute by outcome" }), legend()),
      h("div", h("h2", "Deliveries per hour, last day"), stackedBars(hour.buckets, { label: hourLabel, title: "Deliveries per hour by outcome" }), legend()));
    const upcoming = soon.data.slice().sort((a, b) => a.scheduled_at.localeCompare(b.scheduled_at));
    fill(next, h("h2", "Firing in the next hour"), upcoming.length
      ? h("ul.plain", upcoming.slice(0, 15).map((o) => h("li", both(o.scheduled_at), " ", h("a", { href: `/ui/events/${o.event_id}` }, "event"), " · ", relative(o.scheduled_at))),
        upcoming.length > 15 ? h("li.muted", `and ${upcoming.length - 15} more`) : null)
      : h("p.muted", "Nothing due in the next hour."));
    fill(failures, h("h2", "Needs attention"),
      failed.data.length ? h("ul.plain", failed.data.map((o) => h("li", badge("failed"), " ", when(o.scheduled_at), " ", h("a", { href: `/ui/events/${o.event_id}` }, "event"), " ", h("span.err-text", o.last_error || "")))) : h("p.muted", "No failed occurrence."),
      failed.data.length ? h("p", h("a", { href: "/ui/deliveries?status=failed" }, "All failed deliveries →")) : null,
      hour.top_failing_targets.length ? [h("h2", "Targets failing most (last day)"), h("table.list.small", h("tbody", hour.top_failing_targets.map((t) => h("tr", h("td.mono", t.target), h("td", t.failed), h("td.err-text", t.last_error || "")))))] : null);
  }

  fill(main, h("h1", "Overview"), health, counts, charts, h("div.grid2", next, failures));
  await load();
  return { refresh: load };
}
