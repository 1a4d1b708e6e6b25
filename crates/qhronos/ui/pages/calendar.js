// Calendar: a week or month of upcoming instants, in the browser's time zone. Occurrences are
// materialised only inside the look-ahead window, so the instants come from each event's rule
// (POST /schedules/preview, as the server will expand it); a cap keeps a page to a bounded
// number of requests.
import { h, fill, select } from "../lib/dom.js";
import { get, post, qs } from "../lib/api.js";
import { utc, browserZone } from "../lib/time.js";

const EVENTS_SHOWN = 100;
const PER_EVENT = 100;
const dayKey = (d) => `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const titleFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "long" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });

export async function mount({ main, query, setQuery }) {
  let view = query.view === "week" ? "week" : "month";
  let anchor = query.date ? new Date(query.date) : new Date();
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

  async function load() {
    setQuery({ view, date: anchor.toISOString().slice(0, 10) });
    const [start, end] = range();
    const from = new Date(Math.max(start.getTime(), Date.now()));
    const page = await get("/events" + qs({ status: "active", limit: EVENTS_SHOWN }));
    const items = [];
    await Promise.all(page.data.map(async (e) => {
      if (from >= end) return;
      const p = await post("/schedules/preview", { start_time: e.start_time, timezone: e.timezone, schedule: e.schedule, exdates: e.exdates, rdates: e.rdates, after: new Date(from.getTime() - 1).toISOString(), limit: PER_EVENT }).catch(() => null);
      for (const t of p ? p.occurrences : []) {
        const d = new Date(t);
        if (d >= from && d < end) items.push({ at: d, iso: t, e });
      }
    }));
    items.sort((a, b) => a.at - b.at);
    const byDay = new Map();
    for (const it of items) {
      const k = dayKey(it.at);
      if (!byDay.has(k)) byDay.set(k, []);
      byDay.get(k).push(it);
    }
    title.textContent = view === "week" ? `Week of ${dayFmt.format(start)}` : titleFmt.format(anchor);
    const days = [];
    for (let d = new Date(start); d < end; d = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1)) days.push(d);
    const today = dayKey(new Date());
    fill(grid, ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map((n) => h("div.dow", n)),
      days.map((d) => {
        const list = byDay.get(dayKey(d)) || [];
        const cls = ["day", dayKey(d) === today ? "today" : "", view === "month" && d.getMonth() !== anchor.getMonth() ? "other" : "", list.length ? "" : "empty"].filter(Boolean).join(".");
        return h("div." + cls, h("div.muted", dayFmt.format(d)),
          list.slice(0, 6).map((it) => h("a.item", { href: `/ui/events/${it.e.id}`, title: `${utc(it.iso)} · ${it.e.schedule_text}` }, timeFmt.format(it.at), " ", it.e.name)),
          list.length > 6 ? h("span.muted", `+${list.length - 6} more`) : null);
      }));
    note.textContent = `Times in ${browserZone}. ${page.next_cursor ? `The first ${EVENTS_SHOWN} active events are shown.` : ""}`;
  }

  fill(main, h("div.titlebar", h("h1", "Calendar"), h("div.actions", h("button", { type: "button", onclick: move(-1) }, "←"),
    h("button", { type: "button", onclick: () => { anchor = new Date(); load(); } }, "Today"), h("button", { type: "button", onclick: move(1) }, "→"), viewSel)),
  title, note, grid);
  await load();
  // A refresh asks for one preview per event: at most once a minute.
  let last = Date.now();
  return { refresh: async () => { if (Date.now() - last > 60000) { last = Date.now(); await load(); } } };
}
