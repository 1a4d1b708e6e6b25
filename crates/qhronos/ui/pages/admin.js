// Admin: tokens (list, revoke, issue — the new token shown once, with a copy button), the audit
// log with its filters, backups, and the version/store/configuration summary (no secret).
import { h, fill, button, notice, field, select, showError } from "../lib/dom.js";
import { get, post, api, qs } from "../lib/api.js";
import { when, zoned, browserZone, wallIn } from "../lib/time.js";
import { pager, confirmStep } from "../lib/list.js";

export async function mount({ main, me }) {
  if (!me.can.admin) {
    fill(main, h("h1", "Admin"), h("p", "This token has no admin access."));
    return {};
  }
  const tokensBody = h("tbody");
  const issued = h("div", { id: "issued", "aria-live": "polite" });
  const auditBody = h("tbody");
  const backups = h("section");
  const summary = h("section");

  const tokens = pager((cursor) => get("/tokens" + qs({ limit: 50, cursor })), (page) => {
    fill(tokensBody, page.data.length ? page.data.map((t) => {
      const slot = h("span");
      return h("tr", { "data-jti": t.jti }, h("td", t.sub), h("td", t.access), h("td", (t.scope || []).join(", ") || "all"),
        h("td", when(t.expires_at)), h("td", t.revoked_at ? [h("span.badge.s-cancelled", "revoked"), " ", when(t.revoked_at)] : h("span.badge.s-active", "valid")),
        h("td", t.revoked_at ? null : [button("Revoke", confirmStep(slot, { dry: async () => 1, question: () => `Revoke ${t.sub}'s token?`,
          run: async () => { await api("DELETE", `/tokens/${t.jti}`); notice("Revoked."); await tokens.reload(); } }), "danger"), slot]));
    }) : h("tr", h("td", { colspan: 6 }, h("p.muted", "No issued token."))));
  });

  let issueForm = null;
  if (me.can.issue_tokens) {
    const sub = h("input", { "data-field": "sub", id: "t-sub", required: true });
    const access = select([["read", "read"], ["write", "write"], ["read_write", "read_write"], ["admin", "admin"]], "read", { "data-field": "access", id: "t-access" });
    const scope = h("input", { "data-field": "scope", id: "t-scope", placeholder: "tag,tag (empty: all)" });
    const exp = h("input", { "data-field": "expires_at", id: "t-expires", type: "datetime-local", value: wallIn(new Date(Date.now() + 30 * 86400000).toISOString(), browserZone) });
    issueForm = h("form.card", { id: "issue" }, h("h2", "Issue a token"), h("p.form-err.error"),
      h("div.row", field("For (sub)", sub), field("Access", access), field("Scope", scope), field("Expires", exp)),
      h("button.primary", { type: "submit" }, "Issue"));
    issueForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const t = await post("/tokens", { sub: sub.value.trim(), access: access.value, scope: scope.value.split(",").map((x) => x.trim()).filter(Boolean), expires_at: exp.value ? zoned(exp.value, browserZone) : "" });
        showError(issueForm, { message: "" });
        const secret = h("code.secret", { id: "new-token" }, t.token);
        fill(issued, h("div.card", h("p", h("strong", "The new token, shown this once:")), secret, " ",
          button("Copy", async () => { await navigator.clipboard.writeText(t.token); notice("Copied."); }),
          h("button", { type: "button", onclick: () => fill(issued) }, "Done")));
        sub.value = "";
        await tokens.reload();
      } catch (err) { showError(issueForm, err); }
    });
  }

  const af = {
    actor: h("input", { id: "a-actor", placeholder: "actor", "aria-label": "Actor" }),
    action: h("input", { id: "a-action", placeholder: "action, e.g. event.create", "aria-label": "Action" }),
    target: h("input", { id: "a-target", placeholder: "target", "aria-label": "Target" }),
    from: h("input", { id: "a-from", type: "datetime-local", "aria-label": "From" }),
    to: h("input", { id: "a-to", type: "datetime-local", "aria-label": "To" }),
  };
  const at = (el) => (el.value ? new Date(zoned(el.value, browserZone)).toISOString() : "");
  const audit = pager((cursor) => get("/audit" + qs({ actor: af.actor.value.trim(), action: af.action.value.trim(), target: af.target.value.trim(), from: at(af.from), to: at(af.to), limit: 25, cursor })), (page) => {
    fill(auditBody, page.data.length ? page.data.map((a) => h("tr", h("td", when(a.at)), h("td", a.actor), h("td.mono", a.action), h("td.mono", a.target || ""), h("td.mono", JSON.stringify(a.summary)))) : h("tr", h("td", { colspan: 5 }, h("p.muted", "No entry."))));
  });
  const auditFilters = h("form.filters", af.actor, af.action, af.target, h("label.inline", "from ", af.from), h("label.inline", "to ", af.to), h("button", { type: "submit" }, "Filter"));
  auditFilters.addEventListener("submit", (e) => { e.preventDefault(); audit.first(); });

  async function loadOps() {
    if (!me.can.operate) { fill(backups); fill(summary); return; }
    const [b, c] = await Promise.all([get("/admin/backups").catch((e) => ({ error: e.message })), get("/admin/config")]);
    fill(backups, h("h2", "Backups"), b.error ? h("p.muted", b.error) : [h("p.muted", "Folder: ", h("span.mono", b.dir)),
      b.data.length ? h("table.list.small", h("tbody", b.data.map((x) => h("tr", h("td.mono", x.file), h("td", when(x.taken_at)), h("td", `${x.bytes} bytes`), h("td", x.integrity ?? "not checked"))))) : h("p.muted", "No backup yet.")],
    c.store === "sqlite" ? button("Back up now", async () => { const r = await post("/admin/backup"); notice(`Backup written: ${r.path}`); await loadOps(); }) : null);
    fill(summary, h("h2", "Server"), h("dl.facts", h("dt", "Version"), h("dd", c.version), h("dt", "Store"), h("dd", c.store), h("dt", "Started"), h("dd", when(c.started_at))),
      h("details", h("summary", "Configuration (secrets hidden)"), h("pre.mono", { id: "config" }, JSON.stringify(c.config, null, 2))));
  }

  fill(main, h("h1", "Admin"),
    h("h2", "Tokens"), issued, issueForm,
    h("div.scroll", h("table.list", { id: "tokens" }, h("thead", h("tr", h("th", "For"), h("th", "Access"), h("th", "Scope"), h("th", "Expires"), h("th", "State"), h("th", ""))), tokensBody)), tokens.el,
    h("h2", "Audit log"), auditFilters,
    h("div.scroll", h("table.list", { id: "audit" }, h("thead", h("tr", h("th", "When"), h("th", "Actor"), h("th", "Action"), h("th", "Target"), h("th", "Summary"))), auditBody)), audit.el,
    backups, summary);
  await Promise.all([tokens.first(), audit.first(), loadOps()]);
  return { refresh: async () => { await Promise.all([tokens.reload(), audit.reload()]); } };
}
