// What the list pages share: cursor pagination, a selection that survives refreshes, status
// badges, and a confirm step for actions on many rows.
import { h, fill, button } from "./dom.js";

/** Cursor pages: `load(cursor)` fetches one page; `back`/`next` move; `reload` re-fetches the
 * page shown (auto-refresh) without moving. */
export function pager(load, onPage) {
  const stack = [];
  let cursor = null, next = null;
  const info = h("span.muted");
  const prev = h("button", { type: "button", disabled: true }, "← Newer");
  const more = h("button", { type: "button", disabled: true }, "Older →");
  async function show(c) {
    const page = await load(c);
    cursor = c;
    next = page.next_cursor || null;
    prev.disabled = stack.length === 0;
    more.disabled = !next;
    info.textContent = `page ${stack.length + 1}`;
    onPage(page);
  }
  prev.addEventListener("click", () => show(stack.pop() ?? null));
  more.addEventListener("click", () => { stack.push(cursor); show(next); });
  return {
    el: h("div.pager", prev, info, more),
    first: () => { stack.length = 0; return show(null); },
    reload: () => show(cursor),
  };
}

/** A selection of ids kept across re-renders. */
export function selection(onChange) {
  const ids = new Set();
  return {
    ids,
    box(id, label) {
      return h("input", { type: "checkbox", checked: ids.has(id), "aria-label": label, "data-id": id,
        onchange: (e) => { e.target.checked ? ids.add(id) : ids.delete(id); onChange(); } });
    },
    all(rowIds, label) {
      const on = rowIds.length > 0 && rowIds.every((i) => ids.has(i));
      return h("input", { type: "checkbox", checked: on, "aria-label": label,
        onchange: (e) => { for (const i of rowIds) e.target.checked ? ids.add(i) : ids.delete(i); onChange(true); } });
    },
    clear() { ids.clear(); onChange(true); },
  };
}

/** A status word as a badge. */
export function badge(status) {
  return h("span.badge.s-" + status, status);
}

/** An action that first counts (`dry`) then asks to confirm in place before `run`. */
export function confirmStep(slot, { dry, question, run }) {
  return async () => {
    const n = await dry();
    if (!n) { fill(slot, h("span.muted", "Nothing matches.")); return; }
    fill(slot, h("span.confirm", { role: "group", "aria-label": "Confirm" }, question(n), " ",
      button("Confirm", async () => { fill(slot); await run(); }, "danger"), " ",
      h("button", { type: "button", onclick: () => fill(slot) }, "Cancel")));
    slot.querySelector("button")?.focus();
  };
}
