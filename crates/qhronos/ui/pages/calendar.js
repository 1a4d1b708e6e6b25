// Calendar: a week or month of occurrences, in the browser's time zone. Each day asks
// GET /agenda for its first instants across every event the token may see: the stored
// occurrences (with their status) and, beyond the look-ahead window, what the rules will give
// ("projected"). Days load a few at a time and show as they arrive, so a dense store paints
// its first days at once.
import { h, fill, select } from "../lib/dom.js";
import { get, qs } from "../lib/api.js";
import { utc, browserZone } from "../lib/time.js";

const SHOWN = { month: 6, week: 24 };
const PARALLEL = 4;
const dayKey = (d) => `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const titleFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "long" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const nextDay = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1);

export async function mount({ main, query, setQuery }) {
  let view = query.view === "week" ? "week" : "month";
  let anchor = query.date ? new Date(query.date + "T00:00") : new Date();
  if (Number.isNaN(anchor.getTime())) anchor = new Date();
  let generation = 0;
  const title = h("h2#cal-title");
  const grid = h("div.cal", { id: "calendar" });
  const note = h("p.muted");
  const viewSel = select([["month", "Month"], ["week", "Week"]], view, { id: "cal-view", "aria-label": "View" });
  viewSel.addEventListener("change", () => { view = viewSel.value; load(); });
  const move = (n) => () => {
    anchor = view === "week" ? new Date(anchor.getFullYear(), anchor.getMonth(), anchor.getDate() + 7 * n) : new Date(anchor.getFullYear(), anchor.getMonth() + n, 1);
    load();
  };

  function range() {
    if (view === "week") {
      const d = new Date(anchor.getFullYear(), anchor.getMonth(), anchor.getDate());
      const start = new Date(d.getFullYear(), d.getMonth(), d.getDate() - ((d.getDay() + 6) % 7));
      return [start, new Date(start.getFullYear(), start.getMonth(), start.getDate() + 7)];
    }
    const first = new Date(anchor.getFullYear(), anchor.getMonth(), 1);
    const start = new Date(first.getFullYear(), first.getMonth(), 1 - ((first.getDay() + 6) % 7));
    const last = new Date(anchor.getFullYear(), anchor.getMonth() + 1, 1);
    const end = new Date(last.getFullYear(), last.getMonth(), last.getDate() + ((8 - last.getDay()) % 7));
    return [start, end];
  }

  function item(it) {
    const at = new Date(it.at);
    const status = it.status === "projected" ? "projected (from the rule, not stored yet)" : it.status;
    return h(`a.item.s-${it.status}`, {
      href: `/ui/events/${it.event_id}`, "data-status": it.status, title: `${utc(it.at)} · ${status}`,
    }, timeFmt.format(at), " ", it.name);
  }

  /** One day's cell, filled from its agenda page. */
  function fillDay(cell, d, page) {
    const shown = SHOWN[view];
    const list = page.data.slice(0, shown);
    cell.classList.toggle("empty", !list.length);
    const more = page.data.length > shown || page.next_cursor;
    const weekLink = `/ui/calendar${qs({ view: "week", date: isoDate(d) })}`;
    fill(cell, h("div.muted", dayFmt.format(d)), list.map(item),
      more ? h("a.muted.more", { href: weekLink }, view === "week" ? "and more…" : "more…") : null,
      page.incomplete ? h("span.muted", { title: "Some rules could not be expanded" }, "(incomplete)") : null);
  }

  async function load() {
    const gen = ++generation;
    setQuery({ view, date: isoDate(anchor) });
    const [start, end] = range();
    title.textContent = view === "week" ? `Week of ${dayFmt.format(start)}` : titleFmt.format(anchor);
    const days = [];
    for (let d = new Date(start); d < end; d = nextDay(d)) days.push(d);
    const today = dayKey(new Date());
    const cells = days.map((d) => {
      const cls = ["day", dayKey(d) === today ? "today" : "", view === "month" && d.getMonth() !== anchor.getMonth() ? "other" : ""].filter(Boolean).join(".");
      return h("div." + cls, { "data-day": isoDate(d) }, h("div.muted", dayFmt.format(d)), h("span.muted.loading", "…"));
    });
    fill(grid, ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map((n) => h("div.dow", n)), cells);
    note.textContent = `Times in ${browserZone}. Stored occurrences show their status; later instants come from each event's rule.`;
    // Today first (what a person looks at), then the rest in order, a few at a time.
    const order = days.map((_, i) => i);
    const t = days.findIndex((d) => dayKey(d) === today);
    if (t > 0) order.unshift(...order.splice(t, 1));
    let next = 0;
    let failed = null;
    const worker = async () => {
      while (next < order.length && gen === generation) {
        const i = order[next++];
        const d = days[i];
        try {
          const page = await get("/agenda" + qs({ from: d.toISOString(), to: nextDay(d).toISOString(), limit: SHOWN[view] + 1 }));
          if (gen === generation) fillDay(cells[i], d, page);
        } catch (e) {
          failed = e;
          if (gen === generation) fill(cells[i], h("div.muted", dayFmt.format(d)), h("span.err-text", "not loaded"));
        }
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    if (failed && gen === generation) note.textContent += ` Some days could not be loaded: ${failed.message}`;
  }

  fill(main, h("div.titlebar", h("h1", "Calendar"), h("div.actions", h("button", { type: "button", onclick: move(-1) }, "←"),
    h("button", { type: "button", onclick: () => { anchor = new Date(); load(); } }, "Today"), h("button", { type: "button", onclick: move(1) }, "→"), viewSel)),
  title, note, grid);
  await load();
  // Refreshes at most once a minute: a month is up to 42 agenda requests.
  let last = Date.now();
  return { refresh: async () => { if (Date.now() - last > 60000) { last = Date.now(); await load(); } } };
}

/** The local date as YYYY-MM-DD. */
function isoDate(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}
