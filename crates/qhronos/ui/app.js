// The dashboard's shell: sign-in gate, navigation, a tiny router over /ui/… paths, and the
// auto-refresh that asks the current page to update its data in place (forms, selection and
// scroll position are the page's own and stay).
import { h, fill, notice } from "./lib/dom.js";
import { api, token, setUnauthorized } from "./lib/api.js";

const ROUTES = [
  [/^\/?$/, "overview"],
  [/^\/events\/?$/, "events"],
  [/^\/events\/new\/?$/, "edit"],
  [/^\/events\/([0-9a-f-]{36})\/edit\/?$/, "edit"],
  [/^\/events\/([0-9a-f-]{36})\/?$/, "event"],
  [/^\/calendar\/?$/, "calendar"],
  [/^\/deliveries\/?$/, "deliveries"],
  [/^\/channels\/?$/, "channels"],
  [/^\/admin\/?$/, "admin"],
];

const NAV = [
  ["/ui/", "Overview"], ["/ui/events", "Events"], ["/ui/calendar", "Calendar"],
  ["/ui/deliveries", "Deliveries"], ["/ui/channels", "Channels"], ["/ui/admin", "Admin", (me) => me.can.admin],
];

const REFRESH_MS = 3000;
let me = null;
let current = null;
let seq = 0;

/** Goes to a dashboard path (pushState), or replaces the current entry. */
export function go(path, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

/** Sets the query of the current URL (filters), without a new history entry or a reload. */
export function setQuery(params) {
  const u = new URL(location.href);
  u.search = "";
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  history.replaceState(null, "", u.pathname + u.search);
}

function signOut() {
  token.clear();
  me = null;
  go("/ui/", true);
}

function shell() {
  const path = location.pathname.replace(/^\/ui/, "") || "/";
  fill(document.getElementById("nav"), NAV.filter(([, , ok]) => !ok || ok(me)).map(([href, label]) => {
    const here = href === "/ui/" ? path === "/" : path.startsWith(href.slice(3));
    return h("a", { href, "aria-current": here ? "page" : null }, label);
  }));
  const who = me.kind === "master" ? "master token" : `${me.sub} · ${me.access}${me.scope ? " · " + me.scope.join(", ") : ""}`;
  fill(document.getElementById("who"),
    h("span.muted", { title: "Signed in as" }, who),
    h("button.link", { type: "button", onclick: signOut, id: "signout" }, "Sign out"));
}

async function route() {
  const n = ++seq;
  if (current && current.unmount) current.unmount();
  current = null;
  const main = document.getElementById("main");
  if (!token.get()) {
    fill(document.getElementById("nav"));
    fill(document.getElementById("who"));
    const m = await import("./pages/signin.js");
    current = await m.mount({ main, signedIn: async () => { await loadMe(); route(); } });
    return;
  }
  if (!me) {
    try { await loadMe(); } catch (e) { token.clear(); notice(e.message, "error"); return route(); }
  }
  const path = location.pathname.replace(/^\/ui/, "") || "/";
  let page = null, params = [];
  for (const [re, name] of ROUTES) {
    const m = re.exec(path);
    if (m) { page = name; params = m.slice(1); break; }
  }
  shell();
  if (!page) { fill(main, h("h1", "Not found"), h("p", "No dashboard page at ", path, ".")); return; }
  fill(main, h("p.muted", "Loading…"));
  const mod = await import(`./pages/${page}.js`);
  if (n !== seq) return;
  const query = Object.fromEntries(new URLSearchParams(location.search));
  try {
    current = await mod.mount({ main, params, query, me, go, setQuery });
  } catch (e) {
    fill(main, h("h1", "Error"), h("p.error", e.message));
  }
  document.title = `${main.querySelector("h1")?.textContent || "Qhronos"} · Qhronos`;
}

async function loadMe() {
  me = await api("GET", "/me");
}

// Links inside the dashboard change the view without reloading the page.
document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[href]");
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.target) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || !u.pathname.startsWith("/ui")) return;
  ev.preventDefault();
  go(u.pathname + u.search);
  document.getElementById("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
window.addEventListener("popstate", route);
setUnauthorized(() => { token.clear(); me = null; notice("The token was refused (expired or revoked): sign in again.", "error"); route(); });

setInterval(async () => {
  if (document.visibilityState !== "visible" || !current || !current.refresh || current.busy) return;
  current.busy = true;
  try { await current.refresh(); } catch (e) { /* shown by the next successful refresh or action */ } finally { current.busy = false; }
}, REFRESH_MS);

route();
