// One occurrence's attempts: status code, duration, error and the response excerpt.
import { h } from "./dom.js";
import { when } from "./time.js";

export function attemptsTable(occ) {
  const a = occ.attempts || [];
  if (!a.length) return h("p.muted", "No attempt yet.");
  const first = new Date(a[0].started_at).getTime() - new Date(occ.scheduled_at).getTime();
  return h("div.attempts",
    h("p.muted", `First attempt ${Math.max(0, first)} ms after its scheduled time.`),
    h("table.list.small", h("thead", h("tr", h("th", "#"), h("th", "Started"), h("th", "Took"), h("th", "Status"), h("th", "Error"), h("th", "Response"))),
      h("tbody", a.map((t) => h("tr.attempt",
        h("td", t.attempt), h("td", when(t.started_at)), h("td", `${t.duration_ms} ms`),
        h("td", t.status_code ?? "—"), h("td.err-text", t.error || ""),
        h("td", t.response ? h("pre.excerpt", t.response) : "—"))))));
}
