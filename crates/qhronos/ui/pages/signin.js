// Sign in with a token (master or issued). It is kept in sessionStorage: it goes away with the
// tab, and never appears in a URL.
import { h, fill, field, showError } from "../lib/dom.js";
import { api, token } from "../lib/api.js";

export async function mount({ main, signedIn }) {
  const input = h("input", { type: "password", autocomplete: "off", id: "token", "data-field": "token", required: true, spellcheck: "false" });
  const form = h("form.card.narrow", { id: "signin" },
    h("h1", "Sign in"),
    h("p", "Paste a Qhronos token: the master token or one issued with POST /tokens. It stays in this tab only."),
    field("Token", input),
    h("p.form-err.error"),
    h("button.primary", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    try {
      await api("GET", "/me", undefined, t);
      token.set(t);
      await signedIn();
    } catch (e) {
      showError(form, { field: "token", message: e.status === 401 ? "This token is not valid (unknown, expired or revoked)." : e.status === 403 ? "This token may not read (access 'write' only): the dashboard needs read access." : e.message });
    }
  });
  fill(main, form);
  input.focus();
  return {};
}
