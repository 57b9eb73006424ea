// What the observability pages (telemetry, traces, logs, metrics) share: the time range
// control, filters kept in the address, folded JSON, a "load more" that follows an API's
// `next` cursor (a button, and infinite scroll when it comes into view), nanosecond times.
import { el, field, uid } from "./app.js";

export const RANGES = [
  ["15m", "Last 15 minutes", 15 * 60],
  ["1h", "Last hour", 3600],
  ["6h", "Last 6 hours", 6 * 3600],
  ["24h", "Last 24 hours", 24 * 3600],
  ["7d", "Last 7 days", 7 * 86400],
  ["30d", "Last 30 days", 30 * 86400],
  ["all", "All time", null],
];

// The time range control: a preset, or "from"/"until" (UTC, either may be empty) that
// override it. `query` gives the initial values (range, since, until).
export function timeRange(query, fallback = "24h") {
  const preset = el(
    "select",
    { name: "range" },
    RANGES.map(([value, label]) => el("option", { value }, label)),
  );
  preset.value = query.get("range") || fallback;
  const since = el("input", { name: "since", type: "datetime-local", step: "1", value: localValue(query.get("since")) });
  const until = el("input", { name: "until", type: "datetime-local", step: "1", value: localValue(query.get("until")) });
  const node = el(
    "fieldset",
    { class: "range" },
    el("legend", {}, "Time range"),
    field("Range", preset),
    field("From (UTC)", since),
    field("Until (UTC)", until),
  );
  return {
    node,
    // {since, until} as ISO strings (undefined when open), and the span in seconds
    // (null for all time with no "from").
    bounds() {
      const to = until.value ? utcOf(until.value) : null;
      let from = since.value ? utcOf(since.value) : null;
      const seconds = RANGES.find(([v]) => v === preset.value)?.[2] ?? null;
      if (!from && seconds !== null) {
        from = new Date((to ? Date.parse(to) : Date.now()) - seconds * 1000).toISOString();
      }
      return { since: from || undefined, until: to || undefined };
    },
    // What goes back into the address.
    state() {
      return { range: preset.value, since: since.value ? utcOf(since.value) : "", until: until.value ? utcOf(until.value) : "" };
    },
  };
}

// datetime-local has no zone: the portal reads and writes it as UTC.
function utcOf(local) {
  return new Date(`${local.length === 16 ? `${local}:00` : local}Z`).toISOString();
}

function localValue(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString().slice(0, 19);
}

// A query string from an object, leaving out empty values; arrays are joined with commas.
export function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      if (value.length) search.set(key, value.join(","));
    } else search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// The page's filters in the address, so a search can be shared and survives a reload.
export function keepInAddress(params) {
  history.replaceState(null, "", location.pathname + qs(params));
}

// JSON folded in <details>: the summary is a one-line preview, the body the whole document.
export function folded(value, label = "bits") {
  const text = JSON.stringify(value ?? null);
  const preview = text.length > 80 ? `${text.slice(0, 77)}…` : text;
  return el(
    "details",
    { class: "json" },
    el("summary", {}, el("span", { class: "visually-hidden" }, `${label}: `), el("code", {}, preview)),
    el("pre", {}, JSON.stringify(value ?? null, null, 2)),
  );
}

// A key/value list (attributes), or a dash when empty.
export function attributeList(attributes) {
  const entries = Object.entries(attributes || {});
  if (!entries.length) return el("p", { class: "hint" }, "none");
  return el(
    "dl",
    { class: "attrs" },
    entries.map(([key, value]) => [el("dt", {}, key), el("dd", {}, typeof value === "string" ? value : JSON.stringify(value))]),
  );
}

// "Load more" for a cursor-paginated listing: `load(cursor)` fetches a page and answers its
// `next` (undefined: a newer search replaced this one meanwhile, leave the cursor alone).
// The button works from the keyboard; an IntersectionObserver clicks it for a mouse user
// who scrolls to the end (infinite scroll).
export function pager(load) {
  let next = null;
  let busy = false;
  const status = el("p", { class: "hint", role: "status" });
  const button = el("button", { type: "button", class: "secondary", hidden: true }, "Load older");
  async function more() {
    if (busy || !next) return;
    busy = true;
    button.disabled = true;
    try {
      const got = await load(next);
      if (got !== undefined) next = got;
    } finally {
      busy = false;
      button.disabled = false;
      button.hidden = !next;
      status.textContent = next ? "" : "End of the results.";
    }
  }
  button.addEventListener("click", more);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) more();
  });
  observer.observe(button);
  return {
    node: el("div", { class: "pager" }, button, status),
    set(cursor) {
      next = cursor;
      button.hidden = !next;
      status.textContent = next ? "" : "End of the results.";
    },
    stop() {
      observer.disconnect();
    },
  };
}

// Milliseconds since the epoch, with the nanoseconds kept as a fraction, from an ISO time
// like 2026-12-08T01:02:03.123456789Z (Date.parse keeps only milliseconds).
export function msOf(iso) {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(iso || "");
  if (!match) return Date.parse(iso);
  const fraction = (match[2] || "").padEnd(9, "0").slice(0, 9);
  return Date.parse(`${match[1]}Z`) + Number(fraction) / 1e6;
}

// A step for `buckets` buckets over `seconds`, rounded to a readable one.
const STEPS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400];
export function stepFor(seconds, buckets = 60) {
  const want = Math.max(1, seconds / buckets);
  return STEPS.find((s) => s >= want) || STEPS[STEPS.length - 1];
}

export function stepText(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

// A visually hidden live region for announcements ("3 new events").
export function announcer() {
  return el("p", { class: "visually-hidden", role: "status", "aria-live": "polite", id: uid("live") });
}
