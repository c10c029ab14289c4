// Building the page as text (never markup), units and sparklines.
// ---------------------------------------------------------------------------------------
// DOM helpers (text only)

/** An element with attributes and children; string children become text nodes. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(e, attrs);
  return e;
}

function setAttrs(e, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.setAttribute("class", v);
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
}

/** A badge for a phase, task state or liveness; the class comes from a fixed list. */
function badge(value) {
  const v = String(value ?? "unknown");
  const cls = STATES.has(v.toLowerCase()) ? "s-" + v.toLowerCase() : "s-unknown";
  return el("span", { class: "badge " + cls }, v);
}

// ---------------------------------------------------------------------------------------
// Units

function cores(q) {
  if (typeof q === "number") return q;
  const s = String(q ?? "").trim();
  if (s.endsWith("m")) return (parseFloat(s) || 0) / 1000;
  return parseFloat(s) || 0;
}

const SIZE_UNITS = [["Ei", 2 ** 60], ["Pi", 2 ** 50], ["Ti", 2 ** 40], ["Gi", 2 ** 30], ["Mi", 2 ** 20],
  ["Ki", 2 ** 10], ["E", 1e18], ["P", 1e15], ["T", 1e12], ["G", 1e9], ["M", 1e6], ["k", 1e3]];

function bytes(q) {
  if (typeof q === "number") return q;
  const s = String(q ?? "").trim();
  for (const [suffix, mult] of SIZE_UNITS) {
    if (s.endsWith(suffix)) return (parseFloat(s.slice(0, -suffix.length)) || 0) * mult;
  }
  return parseFloat(s) || 0;
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  const digits = i === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return n.toFixed(digits) + " " + units[i];
}

function fmtCores(c) {
  if (c === 0) return "0";
  if (c < 1) return Math.round(c * 1000) + "m";
  return String(Math.round(c * 100) / 100);
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

function fmtAgo(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return Math.round(s) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}

// ---------------------------------------------------------------------------------------
// Sparklines (inline SVG)

/** `values` as a line over `max` (or their own maximum), then the newest value and `suffix`. */
function sparkline(kind, label, values, max, fmt, suffix) {
  const wrap = el("span", { class: "spark " + kind, title: label });
  if (!values.length) {
    wrap.append(el("span", { class: "nosamples" }, "no samples yet"));
    return wrap;
  }
  const W = 96, H = 24;
  const top = Math.max(max || 0, ...values) || 1;
  const step = values.length > 1 ? W / (values.length - 1) : 0;
  const pts = values.map((v, i) => [values.length > 1 ? i * step : W, H - 1 - (v / top) * (H - 2)]);
  const line = pts.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ");
  const s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label });
  s.append(svg("polygon", { class: "area", points: "0," + H + " " + line + " " + W + "," + H }));
  s.append(svg("polyline", { points: values.length > 1 ? line : "0," + pts[0][1].toFixed(1) + " " + line }));
  wrap.append(s, el("span", null, fmt(values[values.length - 1]) + (suffix || "")));
  return wrap;
}
