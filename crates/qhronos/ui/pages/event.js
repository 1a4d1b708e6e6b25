// One event: its rule in words, the next instants, occurrences with status and attempts, the
// actions on it and on one occurrence, its version history with restore, and its workflows.
import { h, fill, button, notice } from "../lib/dom.js";
import { get, post, api, qs } from "../lib/api.js";
import { both, when, zoned, wallIn, browserZone } from "../lib/time.js";
import { badge, confirmStep } from "../lib/list.js";
import { attemptsTable } from "../lib/attempts.js";

export async function mount({ main, params, me, go }) {
  const id = params[0];
  const head = h("div");
  const upcoming = h("div");
  const occBody = h("tbody");
  const versions = h("div");
  const flows = h("div");
  const open = new Map(); // occurrence id → its open detail row content
  let ev = null;

  async function loadEvent() {
    ev = await get(`/events/${id}`);
    const w = me.can.write;
    const slot = h("span");
    fill(head,
      h("div.titlebar", h("h1", ev.name), badge(ev.status)),
      ev.description ? h("p", ev.description) : null,
      ev.paused_reason ? h("p.error", "Paused by the engine: ", ev.paused_reason) : null,
      h("dl.facts",
        h("dt", "Rule"), h("dd.rule", ev.schedule_text),
        ev.schedule ? [h("dt", "RRULE"), h("dd", h("code", ev.schedule))] : null,
        h("dt", "Time zone"), h("dd", ev.timezone),
        h("dt", "Starts"), h("dd", both(ev.start_time)),
        h("dt", "Next run"), h("dd", both(ev.next_run_at)),
        h("dt", "Last outcome"), h("dd", ev.last_outcome ? [badge(ev.last_outcome.status), " ", when(ev.last_outcome.finished_at)] : "—"),
        h("dt", "Action"), h("dd", h("code", ev.action.type), " ", h("span.mono", JSON.stringify(ev.action.params))),
        h("dt", "Retry"), h("dd", h("span.mono", JSON.stringify(ev.retry))),
        h("dt", "Misfire"), h("dd", h("span.mono", JSON.stringify(ev.misfire))),
        h("dt", "Tags"), h("dd", ev.tags.length ? ev.tags.join(", ") : "—"),
        h("dt", "Id"), h("dd.mono", ev.id)),
      w ? h("div.actions", { id: "event-actions" },
        ev.status === "paused"
          ? button("Resume", async () => { await post(`/events/${id}/resume`); notice("Resumed."); await refresh(); }, "primary")
          : button("Pause", async () => { await post(`/events/${id}/pause`); notice("Paused."); await refresh(); }),
        button("Trigger now", async () => { await post(`/events/${id}/trigger`); notice("Triggered: an occurrence is due now."); await refresh(); }),
        h("a.button", { href: `/ui/events/${id}/edit` }, "Edit"),
        button("Delete", confirmStep(slot, { dry: async () => 1, question: () => "Delete this event and cancel its upcoming occurrences?",
          run: async () => { await api("DELETE", `/events/${id}`); notice("Deleted."); go("/ui/events"); } }), "danger"),
        slot) : null);
  }

  async function loadUpcoming() {
    if (!ev.schedule && !ev.rdates.length) { fill(upcoming); return; }
    const p = await post("/schedules/preview", { start_time: ev.start_time, timezone: ev.timezone, schedule: ev.schedule, exdates: ev.exdates, rdates: ev.rdates, after: new Date().toISOString(), limit: 5 });
    fill(upcoming, h("h2", "Next instants"), h("ol.instants", p.occurrences.map((t, i) => h("li", both(t), h("small.muted", `${ev.timezone}: ${p.occurrences_local[i]}`)))));
  }

  function occRow(o) {
    const w = me.can.write;
    const tools = h("span.row-actions");
    const detail = h("tr.detail", { hidden: !open.has(o.id) }, h("td", { colspan: 5 }, open.get(o.id) || ""));
    const toggle = h("button.link", { type: "button", "aria-expanded": open.has(o.id) ? "true" : "false", onclick: async () => {
      if (open.has(o.id)) { open.delete(o.id); detail.hidden = true; toggle.setAttribute("aria-expanded", "false"); return; }
      const full = await get(`/occurrences/${o.id}`);
      const content = attemptsTable(full);
      open.set(o.id, content);
      fill(detail.firstChild, content); detail.hidden = false; toggle.setAttribute("aria-expanded", "true");
    } }, `${o.attempt_count} attempt${o.attempt_count === 1 ? "" : "s"}`);
    if (w && o.status === "pending" && o.attempt_count === 0) {
      const at = h("input", { type: "datetime-local", "aria-label": "New time", value: wallIn(o.scheduled_at, browserZone) });
      tools.append(
        button("Cancel", async () => { await api("DELETE", `/occurrences/${o.id}`); notice("Occurrence cancelled."); await loadOccs(); }),
        h("details.move", h("summary", "Move"), at, button("Move", async () => {
          await api("PATCH", `/occurrences/${o.id}`, { scheduled_at: zoned(at.value, browserZone) });
          notice("Occurrence moved."); await loadOccs();
        })));
    }
    if (w && (o.status === "failed" || o.status === "missed")) {
      tools.append(button("Retry", async () => { await post(`/occurrences/${o.id}/retry`); notice("Retry queued."); await loadOccs(); }));
    }
    return [h("tr", { "data-occurrence": o.id }, h("td", both(o.scheduled_at)), h("td", badge(o.status)), h("td", toggle), h("td.err-text", o.last_error || ""), h("td", tools)), detail];
  }

  async function loadOccs() {
    // A move form being filled in is not replaced under the user's hands.
    if (occBody.querySelector("details.move[open]")) return;
    const page = await get(`/events/${id}/occurrences` + qs({ limit: 25 }));
    fill(occBody, page.data.length ? page.data.map(occRow) : h("tr", h("td", { colspan: 5 }, h("p.muted", "No occurrence yet."))));
  }

  async function loadVersions() {
    const list = await get(`/events/${id}/versions` + qs({ limit: 50 }));
    const cur = list.length ? Math.max(...list.map((v) => v.version)) : 0;
    fill(versions, h("h2", "History"), h("ol.versions", { reversed: true }, list.slice().reverse().map((v) => h("li",
      h("div", h("strong", `v${v.version}`), " ", v.change, v.restored_from ? ` (of v${v.restored_from})` : "", " by ", v.actor, " · ", when(v.at),
        me.can.write && v.version !== cur && v.change !== "delete" ? [" ", button(`Restore v${v.version}`, async () => { await post(`/events/${id}/versions/${v.version}/restore`); notice(`Restored v${v.version}.`); await refresh(); await loadVersions(); })] : null),
      h("table.diff", h("tbody", Object.entries(v.diff).map(([k, [a, b]]) => h("tr", h("th", k), h("td.old", JSON.stringify(a)), h("td.new", JSON.stringify(b))))))))));
  }

  async function loadFlows() {
    const page = await get("/workflows" + qs({ limit: 1000 }));
    const mine = page.data.filter((w) => w.when && w.when.event_id === id);
    fill(flows, h("h2", "Workflows from this event"), mine.length
      ? h("ul", mine.map((w) => h("li", h("strong", w.name), " on ", (w.when.on || []).join(", "), " → ", h("span.mono", JSON.stringify(w.then)), w.enabled ? "" : " (disabled)")))
      : h("p.muted", "None."));
  }

  async function refresh() {
    await loadEvent();
    await loadOccs();
    await loadVersions().catch(() => {});
  }

  fill(main, head, upcoming, h("h2", "Occurrences"),
    h("div.scroll", h("table.list", { id: "occurrences" }, h("thead", h("tr", h("th", "Scheduled"), h("th", "Status"), h("th", "Attempts"), h("th", "Last error"), h("th", ""))), occBody)),
    versions, flows);
  await loadEvent();
  await Promise.all([loadUpcoming(), loadOccs(), loadVersions().catch(() => {}), loadFlows().catch(() => {})]);
  return { refresh };
}
