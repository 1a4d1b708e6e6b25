// A stacked bar chart of deliveries per bucket by outcome, drawn as SVG by our own code (a few
// dozen lines; no chart library to vendor). Every number is set as an attribute, every label
// as text.
import { s } from "./dom.js";

const SERIES = [["delivered", "delivered"], ["retried", "retried"], ["failed", "failed"], ["missed", "missed"]];

/** buckets: GET /analytics buckets; label(start) → the x-axis label of a bucket. */
export function stackedBars(buckets, { label, title }) {
  const W = 600, H = 180, L = 34, B = 20, T = 8;
  const max = Math.max(1, ...buckets.map((b) => SERIES.reduce((n, [k]) => n + (b[k] || 0), 0)));
  const bw = (W - L) / Math.max(1, buckets.length);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.appendChild(s("title", {}, title));
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(max * f);
    svg.appendChild(s("line", { x1: L, x2: W, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(s("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, v));
  }
  buckets.forEach((b, i) => {
    let base = 0;
    const x = L + i * bw;
    for (const [k, cls] of SERIES) {
      const v = b[k] || 0;
      if (!v) continue;
      const r = s("rect", { x: x + 0.5, width: Math.max(1, bw - 1), y: y(base + v), height: y(base) - y(base + v), class: "c-" + cls });
      r.appendChild(s("title", {}, `${label(b.start)}: ${v} ${k}`));
      svg.appendChild(r);
      base += v;
    }
    const every = Math.ceil(buckets.length / 6);
    if (i % every === 0) svg.appendChild(s("text", { x: x + bw / 2, y: H - 6, "text-anchor": "middle" }, label(b.start)));
  });
  return svg;
}

export function legend() {
  const d = document.createElement("div");
  d.className = "legend";
  for (const [k, cls] of SERIES) {
    const sp = document.createElement("span");
    sp.className = "chart-key k-" + cls;
    sp.textContent = k;
    d.appendChild(sp);
  }
  return d;
}
