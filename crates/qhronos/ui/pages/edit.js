// Create or edit an event. The rule has three forms that stay in step (builder, RRULE, JSON);
// a live preview asks the server (POST /schedules/preview) for the next instants; the API's
// errors are shown at the field they name.
import { h, fill, field, showError, notice, select } from "../lib/dom.js";
import { get, post, api } from "../lib/api.js";
import { zoned, wallIn, browserZone, zones, utc } from "../lib/time.js";
import { FREQS, DAYS, toRRule, fromRRule, clean, numbers } from "../lib/rule.js";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const ACTIONS = ["webhook", "apicall", "websocket", "pull", "email"];

export async function mount({ main, params, go }) {
  const id = params[0] || null;
  const [ev, templates] = await Promise.all([id ? get(`/events/${id}`) : null,
    get("/templates?limit=1000").then((p) => p.data, () => [])]);
  const inp = (f, attrs = {}) => h("input", { "data-field": f, id: "f-" + f.replace(/\./g, "-"), ...attrs });
  const area = (f, attrs = {}) => h("textarea", { "data-field": f, id: "f-" + f.replace(/\./g, "-"), rows: 3, spellcheck: "false", ...attrs });

  // --- what the event is
  const name = inp("name", { required: true, value: ev?.name || "", autocomplete: "off" });
  const description = inp("description", { value: ev?.description || "" });
  const tags = inp("tags", { value: ev?.tags.join(", ") || "", placeholder: "billing, team-a" });
  const zone = inp("timezone", { value: ev?.timezone || browserZone, list: "zones", autocomplete: "off" });
  const start = inp("start_time", { type: "datetime-local", step: 1, required: true });
  start.value = ev ? wallIn(ev.start_time, ev.timezone) : nextHour();

  // --- the rule
  let rule = ev?.schedule ? fromRRule(ev.schedule) : { frequency: "weekly", interval: 1, by_day: ["MO", "TU", "WE", "TH", "FR"] };
  let mode = ev && !ev.schedule ? "once" : "builder";
  const modes = h("div.tabs", { role: "tablist", "aria-label": "Rule input" });
  const b = {
    frequency: select(FREQS.map((f) => [f, f]), rule.frequency, { id: "b-frequency", "data-field": "schedule.frequency" }),
    interval: h("input", { id: "b-interval", type: "number", min: 1, value: rule.interval || 1 }),
    days: DAYS.map((d) => h("input", { type: "checkbox", value: d, id: "b-day-" + d })),
    ordinals: h("input", { id: "b-ordinals", placeholder: "e.g. 1MO, -1FR" }),
    monthDays: h("input", { id: "b-month-days", placeholder: "1, 15, -1" }),
    months: MONTHS.map((m, i) => h("input", { type: "checkbox", value: i + 1, id: "b-month-" + (i + 1) })),
    hours: h("input", { id: "b-hours", placeholder: "9, 17" }),
    minutes: h("input", { id: "b-minutes", placeholder: "0, 30" }),
    setPos: h("input", { id: "b-set-pos", placeholder: "-1" }),
    end: select([["never", "never"], ["count", "after a number of times"], ["until", "on a date"]], "never", { id: "b-end" }),
    count: h("input", { id: "b-count", type: "number", min: 1 }),
    until: h("input", { id: "b-until", type: "datetime-local" }),
  };
  const rrule = area("schedule", { id: "f-rrule", rows: 2 });
  const json = area("schedule", { id: "f-json", rows: 8 });
  const exdates = area("exdates", { rows: 2, placeholder: "one RFC 3339 time a line" });
  exdates.value = (ev?.exdates || []).join("\n");
  const rdates = area("rdates", { rows: 2, placeholder: "one RFC 3339 time a line" });
  rdates.value = (ev?.rdates || []).join("\n");
  const ruleErr = h("small.err", { "data-err-for": "schedule" });
  const builder = h("fieldset.builder", { id: "builder" }, h("legend", "Rule builder"),
    h("div.row", field("Repeat", b.frequency), field("Every", b.interval, "1 = every time, 2 = every other …")),
    h("div.field", h("span.label", "On weekdays"), h("div.checks", DAYS.map((d, i) => h("label.check", b.days[i], d)))),
    field("Weekdays with ordinals", b.ordinals, "overrides the boxes: 1MO = first Monday, -1FR = last Friday"),
    field("Days of the month", b.monthDays),
    h("div.field", h("span.label", "In months"), h("div.checks", MONTHS.map((m, i) => h("label.check", b.months[i], m)))),
    h("div.row", field("At hours", b.hours), field("At minutes", b.minutes), field("Which of the set", b.setPos, "BYSETPOS, e.g. -1")),
    h("div.row", field("Ends", b.end), field("Times", b.count), field("Until (UTC)", b.until)));
  const rawRule = h("div", field("RRULE", rrule, "RFC 5545, e.g. FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9"));
  const jsonRule = h("div", field("JSON", json, "the API's JSON form of the rule"));
  const preview = h("div#preview.preview", { "aria-live": "polite" });

  function ruleToBuilder() {
    b.frequency.value = rule.frequency || "daily";
    b.interval.value = rule.interval || 1;
    const plain = (rule.by_day || []).every((d) => DAYS.includes(d));
    b.days.forEach((c) => { c.checked = plain && (rule.by_day || []).includes(c.value); });
    b.ordinals.value = plain ? "" : (rule.by_day || []).join(", ");
    b.monthDays.value = (rule.by_month_day || []).join(", ");
    b.months.forEach((c) => { c.checked = (rule.by_month || []).includes(Number(c.value)); });
    b.hours.value = (rule.by_hour || []).join(", ");
    b.minutes.value = (rule.by_minute || []).join(", ");
    b.setPos.value = (rule.by_set_pos || []).join(", ");
    b.end.value = rule.count ? "count" : rule.until ? "until" : "never";
    b.count.value = rule.count || "";
    b.until.value = rule.until ? new Date(rule.until).toISOString().slice(0, 16) : "";
  }
  function builderToRule() {
    const ord = b.ordinals.value.trim();
    const r = {
      frequency: b.frequency.value,
      interval: Number(b.interval.value) || 1,
      by_day: ord ? ord.split(/[\s,]+/).filter(Boolean).map((x) => x.toUpperCase()) : b.days.filter((c) => c.checked).map((c) => c.value),
      by_month_day: numbers(b.monthDays.value, "days of the month"),
      by_month: b.months.filter((c) => c.checked).map((c) => Number(c.value)),
      by_hour: numbers(b.hours.value, "hours"),
      by_minute: numbers(b.minutes.value, "minutes"),
      by_set_pos: numbers(b.setPos.value, "which of the set"),
    };
    if (b.end.value === "count" && b.count.value) r.count = Number(b.count.value);
    if (b.end.value === "until" && b.until.value) r.until = b.until.value + ":00Z";
    return clean(r);
  }
  function show(from) {
    if (from !== "rrule") rrule.value = toRRule(rule);
    if (from !== "json") json.value = JSON.stringify(clean(rule), null, 2);
    if (from !== "builder") ruleToBuilder();
    b.count.disabled = b.end.value !== "count";
    b.until.disabled = b.end.value !== "until";
  }
  function changed(from) {
    ruleErr.textContent = "";
    try {
      if (from === "builder") rule = builderToRule();
      if (from === "rrule") rule = fromRRule(rrule.value);
      if (from === "json") rule = JSON.parse(json.value || "{}");
      show(from);
      schedulePreview();
    } catch (e) {
      ruleErr.textContent = e.message;
    }
  }
  builder.addEventListener("input", () => changed("builder"));
  builder.addEventListener("change", () => changed("builder"));
  rrule.addEventListener("input", () => changed("rrule"));
  json.addEventListener("input", () => changed("json"));
  const panes = { once: h("p.muted", "One time, at the start time."), builder, rrule: rawRule, json: jsonRule };
  // Every mode stays in the page (hidden when not chosen), so each is always in step.
  const ruleBox = h("div", Object.values(panes));
  function setMode(m) {
    mode = m;
    for (const t of modes.children) t.setAttribute("aria-selected", t.dataset.mode === m ? "true" : "false");
    for (const [k, el] of Object.entries(panes)) el.hidden = k !== m;
    schedulePreview();
  }
  fill(modes, [["once", "One time"], ["builder", "Builder"], ["rrule", "RRULE"], ["json", "JSON"]].map(([m, l]) =>
    h("button.tab", { type: "button", role: "tab", "data-mode": m, id: "mode-" + m, onclick: () => setMode(m) }, l)));

  // --- live preview
  let timer = null, asked = 0;
  function schedulePreview() { clearTimeout(timer); timer = setTimeout(runPreview, 250); }
  function previewBody() {
    const body = { start_time: zoned(start.value, zone.value || "UTC"), timezone: zone.value || "UTC", limit: 10 };
    if (mode !== "once") body.schedule = toRRule(rule);
    const ex = lines(exdates);
    if (ex.length) body.exdates = ex;
    const rd = lines(rdates);
    if (rd.length) body.rdates = rd;
    return body;
  }
  async function runPreview() {
    const n = ++asked;
    if (!start.value) return fill(preview, h("p.muted", "Pick a start time to see the next instants."));
    try {
      const p = await post("/schedules/preview", previewBody());
      if (n !== asked) return;
      let prevOff = null;
      fill(preview, h("p", h("strong.rule", p.schedule_text)),
        h("ol.instants", p.occurrences.map((t, i) => {
          const local = p.occurrences_local[i];
          const off = local.slice(19);
          const dst = prevOff !== null && off !== prevOff;
          prevOff = off;
          return h("li", { "data-utc": t }, h("span.local", local.replace("T", " ")), " ", h("small.muted", utc(t)), dst ? h("span.badge.s-dst", { title: "The zone's offset changes before this instant" }, "DST " + off) : null);
        })),
        p.occurrences.length ? null : h("p.muted", "No instant: the rule ends before it starts."));
      ruleErr.textContent = "";
    } catch (e) {
      if (n !== asked) return;
      fill(preview, h("p.error", e.message));
      ruleErr.textContent = e.message;
    }
  }
  for (const el of [start, zone, exdates, rdates]) el.addEventListener("input", schedulePreview);

  // --- the action
  const a = ev?.action || { type: "webhook", params: {} };
  const ap = a.params || {};
  const act = {
    type: select(ACTIONS.map((t) => [t, t]), a.type, { "data-field": "action.type", id: "f-action-type" }),
    url: inp("action.params.url", { type: "url", value: ap.url || "", placeholder: "the receiver's URL" }),
    method: select(["POST", "GET", "PUT", "PATCH", "DELETE"].map((m) => [m, m]), ap.method || "POST", { "data-field": "action.params.method", id: "f-action-params-method" }),
    headers: area("action.params.headers", { value: ap.headers ? JSON.stringify(ap.headers) : "" }),
    body: area("action.params.body", { value: ap.body !== undefined ? JSON.stringify(ap.body, null, 2) : "" }),
    client: inp("action.params.client_name", { value: ap.client_name || "" }),
    queue: inp("action.params.queue", { value: ap.queue || "" }),
    to: inp("action.params.to", { value: (ap.to || []).join(", ") }),
    subject: inp("action.params.subject", { value: ap.subject || "" }),
    text: area("action.params.text", { value: ap.text || "" }),
    html: area("action.params.html", { value: ap.html || "", rows: 5 }),
    template: inp("action.params.template", { value: ap.template || "", list: "template-names", autocomplete: "off", placeholder: "none" }),
    version: inp("action.params.template_version", { value: ap.template_version ?? "", placeholder: "newest, pinned" }),
    secret: inp("hmac_secret", { type: "password", autocomplete: "new-password", placeholder: ev?.hmac_secret_set ? "unchanged" : "generated when empty" }),
    newSecret: h("input", { type: "checkbox", id: "f-new-secret" }),
  };
  // A named template (POST /templates) fills the body (webhook, apicall) or the email's parts.
  const templateRow = () => h("div.row", field("Named template", act.template, "a body or email template by name; empty: none"),
    field("Template version", act.version, "empty: the newest, pinned; a number; or latest"));
  const secretRow = () => h("div.row", field("Signing secret", act.secret, ev ? "empty keeps the current one" : "empty: one is generated and shown once"),
    ev ? h("div.field", h("label.check", act.newSecret, " generate a new secret")) : null);
  const actionBox = h("div");
  function showAction() {
    const t = act.type.value;
    fill(actionBox,
      t === "webhook" ? [field("URL", act.url), field("Body (JSON, optional)", act.body, "leave empty for the signed occurrence body"), templateRow(), secretRow()] : null,
      t === "apicall" ? [h("div.row", field("Method", act.method), field("URL", act.url)), field("Headers (JSON object)", act.headers), field("Body (JSON)", act.body), templateRow()] : null,
      t === "websocket" ? field("Client name", act.client, "a GET /ws client-hook of this name receives it") : null,
      t === "pull" ? field("Queue", act.queue, "clients claim with POST /queues/{queue}/claim") : null,
      t === "email" ? [field("To", act.to, "comma-separated"), templateRow(), field("Subject", act.subject, "not with a named template"), field("Text", act.text),
        field("HTML", act.html, "the HTML part (text, HTML or both)")] : null);
  }
  act.type.addEventListener("change", showAction);
  showAction();
  const jsonOr = (el, fieldName) => {
    const t = el.value.trim();
    if (!t) return undefined;
    try { return JSON.parse(t); } catch (e) { throw { field: fieldName, message: `${fieldName}: not JSON (${e.message})` }; }
  };
  function actionValue() {
    const t = act.type.value;
    const p = {};
    if (t === "webhook") { p.url = act.url.value.trim(); const bd = jsonOr(act.body, "action.params.body"); if (bd !== undefined) p.body = bd; }
    if (t === "apicall") { p.method = act.method.value; p.url = act.url.value.trim(); const hd = jsonOr(act.headers, "action.params.headers"); if (hd) p.headers = hd; const bd = jsonOr(act.body, "action.params.body"); if (bd !== undefined) p.body = bd; }
    if (t === "websocket") p.client_name = act.client.value.trim();
    if (t === "pull") p.queue = act.queue.value.trim();
    if (t === "email") {
      p.to = act.to.value.split(",").map((x) => x.trim()).filter(Boolean);
      if (act.subject.value) p.subject = act.subject.value;
      if (act.text.value) p.text = act.text.value;
      if (act.html.value) p.html = act.html.value;
    }
    if (["webhook", "apicall", "email"].includes(t) && act.template.value.trim()) {
      p.template = act.template.value.trim();
      const v = act.version.value.trim();
      if (v) p.template_version = /^\d+$/.test(v) ? Number(v) : v;
    }
    return { type: t, params: p };
  }

  // --- retry and misfire
  const r = ev?.retry || {};
  const retry = {
    max_attempts: inp("retry.max_attempts", { type: "number", min: 1, max: 100, value: r.max_attempts ?? "", placeholder: "8" }),
    backoff: select([["", "default"], ["exponential", "exponential"], ["fixed", "fixed"]], r.backoff || "", { "data-field": "retry.backoff", id: "f-retry-backoff" }),
    initial_delay: inp("retry.initial_delay", { value: r.initial_delay || "", placeholder: "5s" }),
    max_delay: inp("retry.max_delay", { value: r.max_delay || "", placeholder: "3h" }),
    timeout: inp("retry.timeout", { value: r.timeout || "", placeholder: "10s" }),
  };
  const m = ev?.misfire || {};
  const misfire = {
    policy: select([["", "default (fire_once)"], ["fire_once", "fire_once"], ["fire_all", "fire_all"], ["skip", "skip"]], m.policy || "", { "data-field": "misfire.policy", id: "f-misfire-policy" }),
    catch_up_window: inp("misfire.catch_up_window", { value: m.catch_up_window || "", placeholder: "1h" }),
  };
  const metadata = area("metadata", { value: ev && Object.keys(ev.metadata || {}).length ? JSON.stringify(ev.metadata, null, 2) : "" });

  function body() {
    const o = {
      name: name.value.trim(),
      description: description.value.trim() || null,
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      start_time: start.value ? zoned(start.value, zone.value || "UTC") : "",
      timezone: zone.value.trim() || "UTC",
      schedule: mode === "once" ? null : toRRule(rule),
      exdates: lines(exdates),
      rdates: lines(rdates),
      action: actionValue(),
    };
    if (o.action.type === "webhook") {
      if (act.secret.value) o.hmac_secret = act.secret.value;
      else if (ev && act.newSecret.checked) o.hmac_secret = null;
    }
    const rv = {};
    for (const [k, el] of Object.entries(retry)) if (el.value) rv[k] = k === "max_attempts" ? Number(el.value) : el.value;
    if (Object.keys(rv).length) o.retry = rv;
    const mv = {};
    for (const [k, el] of Object.entries(misfire)) if (el.value) mv[k] = el.value;
    if (Object.keys(mv).length) o.misfire = mv;
    const md = jsonOr(metadata, "metadata");
    // Emptied on an edit: cleared (PUT keeps what a body leaves out).
    if (md !== undefined || ev) o.metadata = md ?? {};
    return o;
  }

  const form = h("form.edit", { id: "event-form", novalidate: true },
    h("div.titlebar", h("h1", ev ? `Edit ${ev.name}` : "New event")),
    h("p.form-err.error", { role: "alert" }),
    h("div.cols",
      h("div",
        h("fieldset", h("legend", "Event"), field("Name", name), field("Description", description), field("Tags", tags, "comma-separated"),
          h("div.row", field("Start (in the time zone)", start), field("Time zone", zone))),
        h("fieldset", h("legend", "Rule"), modes, ruleBox, ruleErr, h("div.row", field("Also at (rdates)", rdates, "one time a line, read in the time zone"), field("Except (exdates)", exdates))),
        h("fieldset", h("legend", "Action"), field("Type", act.type), actionBox),
        h("fieldset", h("legend", "Retry"), h("div.row", field("Max attempts", retry.max_attempts), field("Backoff", retry.backoff)),
          h("div.row", field("First delay", retry.initial_delay), field("Longest delay", retry.max_delay), field("Timeout", retry.timeout))),
        h("fieldset", h("legend", "Misfire"), h("div.row", field("Policy", misfire.policy), field("Catch-up window", misfire.catch_up_window))),
        h("fieldset", h("legend", "Metadata"), field("JSON object", metadata, "sent with each delivery"))),
      h("aside", h("h2", "Preview"), preview)),
    h("div.actions", h("button.primary", { type: "submit", id: "save" }, ev ? "Save" : "Create"), h("a.button", { href: ev ? `/ui/events/${ev.id}` : "/ui/events" }, "Cancel")));
  form.appendChild(h("datalist", { id: "zones" }, zones().map((z) => h("option", { value: z }))));
  form.appendChild(h("datalist", { id: "template-names" }, templates.map((t) => h("option", { value: t.name }, `${t.name} (${t.kind}, v${t.version})`))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let o;
    try { o = body(); } catch (err) { return showError(form, err); }
    try {
      const saved = ev ? await api("PUT", `/events/${ev.id}`, o) : await post("/events", o);
      // A generated or new secret comes back once: shown until the next notice.
      if (saved.hmac_secret) notice(`${ev ? "Saved" : "Created"}. Its signing secret, shown only now: ${saved.hmac_secret}`, "secret");
      else notice(ev ? "Saved." : "Created.");
      go(`/ui/events/${saved.id}`);
    } catch (err) {
      showError(form, err);
    }
  });
  show("init");
  fill(main, form);
  setMode(mode);
  name.focus();
  return {};
}

/** The non-empty lines of a textarea. */
function lines(el) {
  return el.value.split("\n").map((s) => s.trim()).filter(Boolean);
}

function nextHour() {
  const d = new Date(Date.now() + 3600000);
  d.setMinutes(0, 0, 0);
  return wallIn(d.toISOString(), browserZone);
}
