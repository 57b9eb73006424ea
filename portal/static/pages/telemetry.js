// The telemetry explorer: GET /api/telemetry with its filters (app, kinds, version, time
// range), newest first, older pages on the `next` cursor; each event's `bits` folded and
// searchable; a live tail that polls for what arrived since the newest event shown; a
// histogram of events over time by kind (POST /api/sql over telemetry_events, the same rows).
import { api, chart, clear, el, field, fmtTime, heading, showError } from "../app.js";
import { announcer, folded, keepInAddress, pager, qs, stepFor, stepText, timeRange } from "../observe.js";

const KINDS = ["error", "warning", "info", "trace", "debug"];
const KIND_COLOURS = { error: "#b3261e", warning: "#8a5a00", info: "#1f5fa8", trace: "#5b3d99", debug: "#4d5560" };
const PAGE = 100;
const TAIL_MS = 2000;

export async function render(main, params) {
  const query = params.query;
  // The app list and the first page are asked at once (the first paint waits for neither
  // in turn); the address's app is an option before the list comes.
  const wantedApp = query.get("appName") || "";
  const appsAnswer = api("GET", "/api/apps");
  const appSelect = el(
    "select",
    { name: "appName" },
    el("option", { value: "" }, "All apps"),
    wantedApp ? el("option", { value: wantedApp }, wantedApp) : null,
  );
  appSelect.value = wantedApp;
  const chosen = new Set((query.get("kind") || "").split(",").filter(Boolean));
  const kindBoxes = KINDS.map((kind) =>
    el("input", { type: "checkbox", name: "kind", value: kind, checked: chosen.has(kind) }),
  );
  const version = el("input", { name: "version", value: query.get("version") || "", autocomplete: "off" });
  const range = timeRange(query);
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Telemetry filters" },
    field("App", appSelect),
    el(
      "fieldset",
      { class: "kinds" },
      el("legend", {}, "Kinds (none: all)"),
      kindBoxes.map((box) => el("label", { class: "check" }, box, ` ${box.value}`)),
    ),
    field("Version", version),
    range.node,
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Apply filters")),
  );

  const search = el("input", { type: "search", name: "q", value: query.get("q") || "", autocomplete: "off" });
  const tailButton = el("button", { type: "button", class: "secondary", "aria-pressed": "false" }, "Live tail");
  const counter = el("p", { class: "hint", "aria-live": "polite" });
  const live = announcer();
  const histogram = el("figure", { class: "chart" });
  const body = el("tbody");
  const list = el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "events" },
      el("caption", { class: "visually-hidden" }, "Telemetry events, newest first"),
      el(
        "thead",
        {},
        el("tr", {}, ["Received", "App", "Kind", "Version", "Bits"].map((c) => el("th", { scope: "col" }, c))),
      ),
      body,
    ),
  );
  const errors = el("div");
  // Each search has a number: an answer to an older one (a page, the tail, the histogram)
  // arriving late is dropped.
  let generation = 0;
  const more = pager(async (cursor) => {
    const mine = generation;
    const page = await api("GET", `/api/telemetry${filterQuery({ cursor, limit: PAGE })}`);
    if (mine !== generation) return undefined;
    addRows(page.events, "append");
    return page.next;
  });

  main.append(
    heading("Telemetry"),
    form,
    errors,
    histogram,
    el(
      "div",
      { class: "toolbar" },
      field("Search loaded events", search, "Filters the events shown by any text in them (app, kind, version, bits)."),
      tailButton,
    ),
    counter,
    live,
    list,
    more.node,
  );

  const seen = new Set();
  let shown = [];
  let newest = null;
  let tailTimer = null;

  function filters() {
    const kinds = kindBoxes.filter((b) => b.checked).map((b) => b.value);
    return { appName: appSelect.value, kind: kinds, version: version.value.trim(), ...range.bounds() };
  }

  // The filters of the last search applied: a cursor (older pages, the tail) only means
  // something with the filters it came from, whatever the form holds since.
  let applied = null;
  function filterQuery(extra) {
    return qs({ ...applied, ...extra });
  }

  function row(event) {
    const text = JSON.stringify([event.appName, event.kind, event.version, event.bits]).toLowerCase();
    const tr = el(
      "tr",
      { dataset: { id: event.id, kind: event.kind } },
      el("td", {}, el("time", { datetime: event.receivedAt }, fmtTime(event.receivedAt))),
      el("td", {}, event.appName),
      el("td", {}, el("span", { class: `kind kind-${event.kind}` }, event.kind)),
      el("td", {}, event.version),
      el("td", {}, folded(event.bits)),
    );
    return { tr, text, event };
  }

  function addRows(events, where) {
    const fresh = events.filter((e) => !seen.has(e.id));
    for (const e of fresh) seen.add(e.id);
    const rows = fresh.map(row);
    if (where === "prepend") {
      body.prepend(...rows.map((r) => r.tr));
      shown = rows.concat(shown);
    } else {
      body.append(...rows.map((r) => r.tr));
      shown = shown.concat(rows);
    }
    for (const e of fresh) if (!newest || e.receivedAt > newest) newest = e.receivedAt;
    applySearch();
    return fresh.length;
  }

  // The search over what is loaded: a row shows when the text is in its app, kind, version
  // or bits; matching bits are unfolded so the match is visible.
  function applySearch() {
    const needle = search.value.trim().toLowerCase();
    let visible = 0;
    for (const r of shown) {
      const hit = !needle || r.text.includes(needle);
      r.tr.hidden = !hit;
      if (hit) visible += 1;
      const details = r.tr.querySelector("details");
      if (needle && hit && details) details.open = true;
    }
    counter.textContent = needle
      ? `${visible} of ${shown.length} loaded events match “${search.value.trim()}”.`
      : `${shown.length} events loaded.`;
  }

  async function load() {
    const mine = ++generation;
    clear(errors);
    clear(body);
    seen.clear();
    shown = [];
    newest = null;
    const state = filters();
    applied = state;
    keepInAddress({
      appName: state.appName,
      kind: state.kind,
      version: state.version,
      ...range.state(),
      q: search.value.trim(),
    });
    try {
      const page = await api("GET", `/api/telemetry${filterQuery({ limit: PAGE })}`);
      if (mine !== generation) return;
      addRows(page.events, "append");
      more.set(page.next);
    } catch (err) {
      if (mine !== generation) return;
      showError(errors, err);
      more.set(null);
      return;
    }
    drawHistogram(histogram, state, () => mine === generation).catch((err) => {
      if (mine !== generation) return;
      clear(histogram);
      histogram.append(el("p", { class: "hint" }, `The histogram could not be drawn: ${err.message}`));
    });
  }

  // The live tail: ask for events from a little before the newest shown (an event is
  // listed once projected, which may be after a later one), keep the ones not seen yet.
  // More than a page since the last poll: follow `next` (a few pages at most) until an
  // event already shown comes up.
  let tailing = false;
  async function tail() {
    if (tailing) return;
    tailing = true;
    const mine = generation;
    const since = newest ? new Date(Date.parse(newest) - 5000).toISOString() : applied.since;
    try {
      const arrived = [];
      let cursor;
      for (let pages = 0; pages < 5; pages += 1) {
        const page = await api("GET", `/api/telemetry${filterQuery({ since, until: undefined, limit: 200, cursor })}`);
        arrived.push(...page.events);
        if (!page.next || page.events.some((e) => seen.has(e.id))) break;
        cursor = page.next;
      }
      if (mine !== generation) return;
      const added = addRows(arrived, "prepend");
      if (added) live.textContent = `${added} new event${added === 1 ? "" : "s"}.`;
    } catch (err) {
      showError(errors, err);
    } finally {
      tailing = false;
    }
  }

  function setTail(on) {
    tailButton.setAttribute("aria-pressed", String(on));
    tailButton.textContent = on ? "Live tail: on" : "Live tail";
    if (tailTimer) clearInterval(tailTimer);
    tailTimer = on ? setInterval(tail, TAIL_MS) : null;
    if (on) tail();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  search.addEventListener("input", () => {
    applySearch();
    keepInAddress({ ...Object.fromEntries(new URLSearchParams(location.search)), q: search.value.trim() });
  });
  tailButton.addEventListener("click", () => setTail(tailButton.getAttribute("aria-pressed") !== "true"));

  const fillApps = appsAnswer.then((apps) => {
    for (const app of apps.apps) {
      if (app.name !== wantedApp) appSelect.append(el("option", { value: app.name }, app.name));
    }
  });
  await Promise.all([fillApps, load()]);
  if (query.get("tail") === "1") setTail(true);
  return () => {
    if (tailTimer) clearInterval(tailTimer);
    more.stop();
  };
}

// Counts per kind per time bucket over the filtered range, stacked bars by kind (uPlot);
// a table with the same numbers for screen readers and keyboard users.
async function drawHistogram(figure, state, current) {
  let { since, until } = state;
  const where = [];
  const params = {};
  if (state.appName) {
    where.push("app = {app:String}");
    params.app = state.appName;
  }
  if (state.kind.length) {
    where.push("toString(kind) IN {kinds:Array(String)}");
    params.kinds = state.kind;
  }
  if (state.version) {
    where.push("version = {version:String}");
    params.version = state.version;
  }
  if (!since) {
    const first = await api("POST", "/api/sql", {
      sql: `SELECT toUnixTimestamp64Milli(min(received_at)) FROM telemetry_events${where.length ? ` WHERE ${where.join(" AND ")}` : ""}`,
      params,
      limit: 1,
    });
    const ms = Number(first.rows[0]?.[0] || 0);
    since = new Date(ms || Date.now() - 86400000).toISOString();
  }
  const end = until ? Date.parse(until) : Date.now();
  const step = stepFor(Math.max(60, (end - Date.parse(since)) / 1000));
  where.push("received_at >= parseDateTime64BestEffort({since:String}, 6, 'UTC')");
  params.since = since;
  if (until) {
    where.push("received_at < parseDateTime64BestEffort({until:String}, 6, 'UTC')");
    params.until = until;
  }
  params.step = step;
  const result = await api("POST", "/api/sql", {
    sql:
      "SELECT toUnixTimestamp(toStartOfInterval(received_at, toIntervalSecond({step:UInt32}))) AS t, " +
      `toString(kind) AS k, count() AS n FROM telemetry_events WHERE ${where.join(" AND ")} ` +
      "GROUP BY t, k ORDER BY t",
    params,
    limit: 10000,
  });
  const first = Math.floor(Date.parse(since) / 1000 / step) * step;
  const last = Math.floor(end / 1000 / step) * step;
  const times = [];
  for (let t = first; t <= last; t += step) times.push(t);
  const index = new Map(times.map((t, i) => [t, i]));
  const counts = Object.fromEntries(KINDS.map((k) => [k, times.map(() => 0)]));
  for (const [t, k, n] of result.rows) {
    const i = index.get(Number(t));
    if (i !== undefined && counts[k]) counts[k][i] = Number(n);
  }
  const kinds = KINDS.filter((k) => counts[k].some((n) => n > 0));
  if (!current()) return;
  clear(figure);
  const caption = el(
    "figcaption",
    {},
    `Events per ${stepText(step)} by kind`,
    kinds.length ? `: ${kinds.map((k) => `${k} ${counts[k].reduce((a, b) => a + b, 0)}`).join(", ")}` : ": none in this range",
  );
  const plot = el("div", { class: "plot", role: "img", "aria-label": caption.textContent });
  figure.append(caption, plot);
  if (!kinds.length) return;
  // Stacked bars: series i is the sum of kinds i.. (drawn first, tallest), so each kind's
  // band shows; the legend reads the kind's own count.
  const { default: uPlot } = await import("../vendor/uPlot.esm.js");
  const stacked = kinds.map((_, i) => times.map((__, t) => kinds.slice(i).reduce((sum, k) => sum + counts[k][t], 0)));
  await chart(
    plot,
    {
      height: 200,
      scales: { x: { time: true, range: () => [first - step / 2, last + step / 2] } },
      axes: [{}, { label: "events", size: 50 }],
      series: [
        {},
        ...kinds.map((k) => ({
          label: k,
          stroke: KIND_COLOURS[k],
          fill: KIND_COLOURS[k],
          width: 1,
          paths: uPlot.paths.bars({ size: [0.8, 60] }),
          points: { show: false },
          value: (u, v, si, i) => (i === null || i === undefined ? "--" : String(counts[k][i])),
        })),
      ],
    },
    [times, ...stacked],
  );
  if (!current()) return;
  figure.append(
    el(
      "details",
      {},
      el("summary", {}, "The counts as a table"),
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "From"), kinds.map((k) => el("th", { scope: "col" }, k)))),
          el(
            "tbody",
            {},
            times
              .map((t, i) => [t, i])
              .filter(([, i]) => kinds.some((k) => counts[k][i] > 0))
              .map(([t, i]) =>
                el("tr", {}, el("td", {}, fmtTime(t * 1000)), kinds.map((k) => el("td", {}, String(counts[k][i])))),
              ),
          ),
        ),
      ),
    ),
  );
}
