// Channels: the WebSocket clients and tag listeners connected to this node, and the pull
// queues with their depth and claims in flight (GET /channels).
import { h, fill } from "../lib/dom.js";
import { get } from "../lib/api.js";
import { when } from "../lib/time.js";

export async function mount({ main }) {
  const ws = h("section");
  const queues = h("section");
  async function load() {
    const c = await get("/channels");
    const w = c.websocket;
    fill(ws, h("h2", "WebSocket clients"), w.clients.length
      ? h("div.scroll", h("table.list", { id: "ws-clients" }, h("thead", h("tr", h("th", "Client"), h("th", "Connections"), h("th", "Awaiting ack"))),
        h("tbody", w.clients.map((x) => h("tr", h("td.mono", x.name), h("td", x.connections), h("td", x.awaiting_ack))))))
      : h("p.muted", "No client connected to this node."),
    h("h2", "Tag listeners"), w.listeners.length
      ? h("ul.plain", { id: "ws-listeners" }, w.listeners.map((l) => h("li", l.tags.map((t) => h("span.tag", t)))))
      : h("p.muted", "No listener connected to this node."));
    fill(queues, h("h2", "Pull queues"), c.queues.length
      ? h("div.scroll", h("table.list", { id: "queues" }, h("thead", h("tr", h("th", "Queue"), h("th", "Ready"), h("th", "Claimed"), h("th", "Waiting"), h("th", "Events"), h("th", "Oldest ready"))),
        h("tbody", c.queues.map((q) => h("tr", h("td.mono", q.queue), h("td", h("strong", q.ready)), h("td", q.claimed), h("td", q.waiting), h("td", q.events), h("td", when(q.oldest_ready_at)))))))
      : h("p.muted", "No pull queue."));
  }
  // WebSocket connections live in the memory of the node a client connected to; the store
  // does not record them, so on a PostgreSQL deployment with several nodes this page lists
  // one node's clients only. Queues are rows in the store: complete on every node.
  const scope = h("p.muted", { id: "ws-scope" }, "WebSocket clients and listeners: only those connected to the node that answered this page. ",
    "With several nodes on one PostgreSQL store, each node holds its own connections and clients of other nodes are not listed here (a client reached through another node still gets its deliveries). ",
    "Pull queues are kept in the store and are complete.");
  fill(main, h("h1", "Channels"), scope, ws, queues);
  await load();
  return { refresh: load };
}
