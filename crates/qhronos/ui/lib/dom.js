// Building the page without ever parsing markup: every string a caller passes becomes a text node, so
// user data (an event named "<img src=x onerror=alert(1)>") is shown as those characters.

/** h("tag#id.class", {attr: value, onclick: fn}, child, ...): an element. Children may be
 * strings (text), numbers, nodes, arrays of those, or null/false (skipped). */
export function h(spec, attrs, ...children) {
  const [head, ...classes] = spec.split(".");
  const [tag, id] = head.split("#");
  const el = document.createElement(tag || "div");
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(" ");
  if (attrs !== undefined && attrs !== null && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked" || k === "selected" || k === "indeterminate") el[k] = v;
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
/** An SVG element with attributes (numbers and strings only). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A short message in the notice bar; errors stay until the next one. */
export function notice(text, kind = "ok") {
  const n = document.getElementById("notice");
  fill(n, text ? h("p." + kind, text) : null);
  if (kind === "ok" && text) setTimeout(() => { if (n.textContent === text) fill(n); }, 4000);
}

/** A labelled field; `input` carries data-field so that API errors can be shown at it. */
export function field(label, input, hint) {
  const id = input.id || (input.id = "f-" + Math.random().toString(36).slice(2, 9));
  return h("div.field", h("label", { for: id }, label), input, hint ? h("small.hint", hint) : null,
    h("small.err", { "data-err-for": input.getAttribute("data-field") || "" }));
}

/** Shows an API error at the field it names (see api.js fieldOf), else at the form's top. */
export function showError(form, err) {
  for (const e of form.querySelectorAll(".err")) e.textContent = "";
  for (const e of form.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
  const f = err.field;
  let slot = null;
  if (f) {
    // The longest data-field that the error's field starts with: "action.params.url" → the URL input.
    let best = "";
    for (const el of form.querySelectorAll("[data-err-for]")) {
      const k = el.getAttribute("data-err-for");
      if (k && (f === k || f.startsWith(k + ".") || f.startsWith(k + "[")) && k.length > best.length) { best = k; slot = el; }
    }
    if (slot) {
      const input = form.querySelector(`[data-field="${CSS.escape(best)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
  }
  slot = slot || form.querySelector(".form-err");
  if (slot) slot.textContent = err.message;
  else notice(err.message, "error");
}

/** A button; `disabled` while its async action runs. */
export function button(label, action, cls = "") {
  const b = h("button" + (cls ? "." + cls : ""), { type: "button" }, label);
  b.addEventListener("click", async (ev) => {
    ev.preventDefault();
    b.disabled = true;
    try { await action(ev); } catch (e) { notice(e.message || String(e), "error"); } finally { b.disabled = false; }
  });
  return b;
}

/** A select with options [[value, label], …]. */
export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(([v, l]) => h("option", { value: v, selected: v === value }, l)));
}
