// Deliveries: occurrences filtered by status (failed = the dead letters), time range and tag;
// one occurrence's attempts; retry one, a selection, or everything the filter matches.
import { h, fill, button, notice, select } from "../lib/dom.js";
import { get, post, qs } from "../lib/api.js";
import { both, zoned, wallIn, browserZone } from "../lib/time.js";
import { pager, selection, badge, confirmStep } from "../lib/list.js";
import { attemptsTable } from "../lib/attempts.js";

const STATUSES = ["pending", "scheduled", "dispatched", "completed", "failed", "missed", "cancelled"];
const RETRYABLE = new Set(["failed", "missed"]);

export async function mount({ main, query, me, setQuery }) {
  const f = { status: query.status || "", tags: query.tags || "", from: query.from || "", to: query.to || "" };
  const status = select([["", "any status"], ...STATUSES.map((s) => [s, s])], f.status, { id: "dl-status", "aria-label": "Status" });
  const tags = h("input", { id: "dl-tags", placeholder: "tag,tag", value: f.tags, "aria-label": "Tags" });
  const from = h("input", { id: "dl-from", type: "datetime-local", "aria-label": "Scheduled from", value: f.from ? wallIn(f.from, browserZone) : "" });
  const to = h("input", { id: "dl-to", type: "datetime-local", "aria-label": "Scheduled to", value: f.to ? wallIn(f.to, browserZone) : "" });
  const body = h("tbody");
  const head = h("tr");
  const slot = h("span.bulk-confirm");
  const count = h("span.muted");
  const names = new Map();
  const open = new Map();
  let rows = [];
  const sel = selection((full) => { count.textContent = sel.ids.size ? `${sel.ids.size} selected` : ""; if (full) render(); });

  // The names of a page's events in one request (GET /events?ids=); a deleted event has none.
  async function nameOf(ids) {
    const missing = [...new Set(ids)].filter((i) => !names.has(i));
    if (!missing.length) return;
    try {
      const page = await get("/events" + qs({ ids: missing.join(","), limit: missing.length }));
      for (const e of page.data) names.set(e.id, e.name);
      for (const i of missing) if (!names.has(i)) names.set(i, null);
    } catch { /* the ids stay as they are */ }
  }
  const p = pager(async (cursor) => {
    const page = await get("/occurrences" + qs({ status: f.status, tags: f.tags, from: f.from, to: f.to, limit: 50, cursor }));
    await nameOf(page.data.map((o) => o.event_id));
    return page;
  }, (page) => { rows = page.data; render(); });

  function row(o) {
    const w = me.can.write && RETRYABLE.has(o.status);
    const detail = h("tr.detail", { hidden: !open.has(o.id) }, h("td", { colspan: 7 }, open.get(o.id) || ""));
    const toggle = h("button.link", { type: "button", "aria-expanded": String(open.has(o.id)), onclick: async () => {
      if (open.has(o.id)) { open.delete(o.id); detail.hidden = true; toggle.setAttribute("aria-expanded", "false"); return; }
      const c = attemptsTable(await get(`/occurrences/${o.id}`));
      open.set(o.id, c); fill(detail.firstChild, c); detail.hidden = false; toggle.setAttribute("aria-expanded", "true");
    } }, `${o.attempt_count} attempt${o.attempt_count === 1 ? "" : "s"}`);
    const n = names.get(o.event_id);
    return [h("tr", { "data-occurrence": o.id, "data-status": o.status },
      me.can.write ? h("td.check", w ? sel.box(o.id, "Select occurrence") : null) : null,
      h("td", h("a", { href: `/ui/events/${o.event_id}` }, n ?? o.event_id.slice(0, 8))),
      h("td", both(o.scheduled_at)), h("td", badge(o.status)), h("td", toggle), h("td.err-text", o.last_error || ""),
      h("td", w ? button("Retry", async () => { await post(`/occurrences/${o.id}/retry`); notice("Retry queued."); sel.ids.delete(o.id); await p.reload(); }) : null)),
    detail];
  }

  function render() {
    const ids = rows.filter((o) => RETRYABLE.has(o.status)).map((o) => o.id);
    fill(head, me.can.write ? h("th.check", sel.all(ids, "Select all retryable on this page")) : null,
      h("th", "Event"), h("th", "Scheduled"), h("th", "Status"), h("th", "Attempts"), h("th", "Last error"), h("th", ""));
    fill(body, rows.length ? rows.map(row) : h("tr", h("td", { colspan: 7 }, h("p.muted", "No occurrence matches."))));
    retryAll.disabled = !RETRYABLE.has(f.status);
    retryAll.title = retryAll.disabled ? "Filter by status failed or missed first" : "";
  }

  const filter = () => {
    const o = { status: f.status };
    if (f.tags) o.tags = f.tags.split(",").map((t) => t.trim()).filter(Boolean);
    if (f.from) o.from = f.from;
    if (f.to) o.to = f.to;
    return o;
  };
  const retryAll = button("Retry all matching", confirmStep(slot, {
    dry: async () => (await post("/occurrences/retry", { ...filter(), dry_run: true })).matched,
    question: (n) => `Retry ${n} ${f.status} occurrence${n === 1 ? "" : "s"} matching the filter?`,
    run: async () => { const r = await post("/occurrences/retry", filter()); notice(`Retried ${r.retried} of ${r.matched}.`); sel.ids.clear(); await p.reload(); },
  }));
  retryAll.id = "retry-all";
  const retrySel = button("Retry selected", async () => {
    if (!sel.ids.size) return notice("Select failed or missed occurrences first.", "error");
    let ok = 0;
    for (const i of sel.ids) { await post(`/occurrences/${i}/retry`); ok++; }
    notice(`Retried ${ok}.`);
    sel.clear(); await p.reload();
  });
  retrySel.id = "retry-selected";

  const filters = h("form.filters", { role: "search" }, status, tags, h("label.inline", "from ", from), h("label.inline", "to ", to), h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", async (e) => {
    e.preventDefault();
    f.status = status.value; f.tags = tags.value.trim();
    f.from = from.value ? new Date(zoned(from.value, browserZone)).toISOString() : "";
    f.to = to.value ? new Date(zoned(to.value, browserZone)).toISOString() : "";
    setQuery(f); sel.ids.clear(); fill(slot);
    await p.first();
  });
  fill(main, h("div.titlebar", h("h1", "Deliveries")), filters,
    me.can.write ? h("div.bulk", retrySel, retryAll, count, slot) : null,
    h("div.scroll", h("table.list", { id: "deliveries" }, h("thead", head), body)), p.el);
  await p.first();
  return { refresh: () => p.reload() };
}
