// Events: search, filter by tag and status, cursor pages (the server paginates; a million
// events are a million / 50 pages, never one fetch), bulk pause/resume/delete on a selection or
// on the whole filter.
import { h, fill, button, notice, select } from "../lib/dom.js";
import { get, post, qs } from "../lib/api.js";
import { both, when } from "../lib/time.js";
import { pager, selection, badge, confirmStep } from "../lib/list.js";

export async function mount({ main, query, me, setQuery }) {
  const f = { q: query.q || "", tags: query.tags || "", status: query.status || "" };
  const q = h("input", { type: "search", placeholder: "name or description", value: f.q, id: "ev-q", "aria-label": "Search" });
  const tags = h("input", { type: "text", placeholder: "tag,tag", value: f.tags, id: "ev-tags", "aria-label": "Tags" });
  const status = select([["", "any status"], ["active", "active"], ["paused", "paused"], ["inactive", "inactive"]], f.status, { id: "ev-status", "aria-label": "Status" });
  const body = h("tbody");
  const head = h("tr");
  const slot = h("span.bulk-confirm");
  const count = h("span.muted");
  let rows = [];
  const sel = selection((full) => { count.textContent = sel.ids.size ? `${sel.ids.size} selected` : ""; if (full) render(); });

  const filter = () => {
    const o = {};
    if (f.q) o.q = f.q;
    if (f.tags) o.tags = f.tags.split(",").map((t) => t.trim()).filter(Boolean);
    if (f.status) o.status = f.status;
    return o;
  };
  const p = pager((cursor) => get("/events" + qs({ q: f.q, tags: f.tags, status: f.status, limit: 50, cursor })), (page) => { rows = page.data; render(); });

  function render() {
    const ids = rows.map((e) => e.id);
    fill(head, me.can.write ? h("th.check", sel.all(ids, "Select all on this page")) : null,
      h("th", "Name"), h("th", "Rule"), h("th", "Next run"), h("th", "Last outcome"), h("th", "Status"), h("th", "Tags"));
    fill(body, rows.length ? rows.map((e) => h("tr", { "data-event": e.id },
      me.can.write ? h("td.check", sel.box(e.id, "Select " + e.name)) : null,
      h("td", h("a.name", { href: `/ui/events/${e.id}` }, e.name)),
      h("td.rule", e.schedule_text),
      h("td", both(e.next_run_at)),
      h("td", e.last_outcome ? [badge(e.last_outcome.status), " ", when(e.last_outcome.finished_at)] : h("span.muted", "—")),
      h("td", badge(e.status)),
      h("td", e.tags.map((t) => h("a.tag", { href: "/ui/events?tags=" + encodeURIComponent(t) }, t)))))
      : h("tr", h("td", { colspan: 7 }, h("p.muted", "No event matches."))));
  }

  const apply = async () => {
    f.q = q.value.trim(); f.tags = tags.value.trim(); f.status = status.value;
    setQuery(f);
    sel.ids.clear();
    await p.first();
  };
  const filters = h("form.filters", { role: "search" }, q, tags, status, h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (e) => { e.preventDefault(); apply(); });

  const onSelection = async (op, verb) => {
    const r = await post(`/events/${op}`, { ids: [...sel.ids] });
    notice(`${verb}: ${r.changed} of ${r.matched} changed.`);
    sel.clear(); await p.reload();
  };
  const bulk = (op, verb) => [
    op === "delete"
      // Deleting asks first; pausing and resuming are undone by each other.
      ? button("Delete selected", confirmStep(slot, {
        dry: async () => sel.ids.size,
        question: (n) => `Delete ${n} selected event${n === 1 ? "" : "s"}? Their upcoming occurrences are cancelled.`,
        run: () => onSelection(op, verb),
      }), "danger")
      : button(`${verb} selected`, async () => {
        if (!sel.ids.size) return notice("Select events first.", "error");
        await onSelection(op, verb);
      }),
    button(`${verb} all matching`, confirmStep(slot, {
      dry: async () => (await post(`/events/${op}`, { ...filter(), dry_run: true })).matched,
      question: (n) => `${verb} ${n} event${n === 1 ? "" : "s"} matching the filter?`,
      run: async () => { const r = await post(`/events/${op}`, filter()); notice(`${verb}: ${r.changed} of ${r.matched} changed.`); await p.reload(); },
    }), op === "delete" ? "danger" : ""),
  ];

  fill(main,
    h("div.titlebar", h("h1", "Events"), me.can.write ? h("a.button.primary", { href: "/ui/events/new", id: "new-event" }, "New event") : null),
    filters,
    me.can.write ? h("div.bulk", { "aria-label": "Bulk actions" }, bulk("pause", "Pause"), bulk("resume", "Resume"), bulk("delete", "Delete"), count, slot) : null,
    h("div.scroll", h("table.list", { id: "events" }, h("thead", head), body)),
    p.el);
  await p.first();
  return { refresh: () => p.reload() };
}
