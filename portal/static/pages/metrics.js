// Metrics: the names the caller's apps report (GET /api/metrics), and one metric over a time
// range (GET /api/metrics?name=…) drawn as one uPlot chart per series (one per group when
// split by an attribute), each with its numbers as a table for screen readers.
import { api, chart, clear, el, field, fmtNumber, fmtTime, heading, showError } from "../app.js";
import { keepInAddress, msOf, qs, stepFor, stepText, timeRange } from "../observe.js";

const AGGREGATIONS = ["avg", "min", "max", "sum", "count", "last"];

export async function render(main, params) {
  const query = params.query;
  const listing = await api("GET", "/api/metrics?limit=1000");
  const name = el(
    "select",
    { name: "name" },
    listing.metrics.map((m) =>
      el("option", { value: JSON.stringify([m.name, m.type]) }, `${m.name} (${m.type}${m.unit ? `, ${m.unit}` : ""})`),
    ),
  );
  const wanted = listing.metrics.find((m) => m.name === query.get("name") && (!query.get("type") || m.type === query.get("type")));
  if (wanted) name.value = JSON.stringify([wanted.name, wanted.type]);
  const aggregation = el("select", { name: "aggregation" }, AGGREGATIONS.map((a) => el("option", { value: a }, a)));
  aggregation.value = query.get("aggregation") || "avg";
  const groupBy = el("input", { name: "groupBy", value: query.get("groupBy") || "", autocomplete: "off" });
  const range = timeRange(query, "1h");
  const form = el(
    "form",
    { class: "filters", "aria-label": "Metric to chart" },
    field("Metric", name),
    field("Aggregation", aggregation),
    field("Split by attribute", groupBy, "An attribute key, like region: one chart per value."),
    range.node,
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Show")),
  );
  const charts = el("section", { class: "charts", "aria-label": "Series" });
  main.append(heading("Metrics"), form, charts);
  if (!listing.metrics.length) {
    form.hidden = true;
    main.append(el("p", {}, "No metrics yet: send some to /v1/metrics with an app secret (see the README's OpenTelemetry section)."));
    return undefined;
  }

  // Each request has a number: charts of an older one arriving late are not drawn.
  let generation = 0;
  async function load() {
    const mine = ++generation;
    clear(charts);
    const [metric, type] = JSON.parse(name.value);
    const bounds = range.bounds();
    const since = bounds.since || new Date(Date.parse(listing.metrics.find((m) => m.name === metric)?.lastSeen || Date.now()) - 30 * 86400000).toISOString();
    const until = bounds.until || new Date().toISOString();
    const step = stepFor(Math.max(60, (Date.parse(until) - Date.parse(since)) / 1000));
    const request = { name: metric, type, aggregation: aggregation.value, groupBy: groupBy.value.trim(), since, until, step: stepText(step) };
    keepInAddress({ name: metric, type, aggregation: aggregation.value, groupBy: request.groupBy, ...range.state() });
    let series;
    try {
      series = await api("GET", `/api/metrics${qs(request)}`);
    } catch (err) {
      if (mine !== generation) return;
      showError(form, err);
      return;
    }
    if (mine !== generation) return;
    if (!series.series.length) {
      charts.append(el("p", {}, `No points of ${metric} in this range.`));
      return;
    }
    for (const one of series.series) {
      if (mine !== generation) return;
      await drawSeries(charts, series, one);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
  return undefined;
}

async function drawSeries(container, metric, one) {
  const group = Object.entries(one.group || {});
  const title = `${metric.name}${group.length ? ` · ${group.map(([k, v]) => `${k}=${v}`).join(", ")}` : ""}`;
  const caption = el(
    "figcaption",
    {},
    el("strong", {}, title),
    ` — ${metric.aggregation} per ${stepText(metric.stepSeconds)}${metric.unit ? ` (${metric.unit})` : ""}`,
  );
  const plot = el("div", { class: "plot", role: "img", "aria-label": `${title}: ${one.points.length} points` });
  const figure = el("figure", { class: "chart", dataset: { group: JSON.stringify(one.group || {}) } }, caption, plot);
  container.append(figure);
  const times = one.points.map((p) => msOf(p.time) / 1000);
  const values = one.points.map((p) => p.value);
  await chart(
    plot,
    {
      height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: metric.unit || metric.aggregation, size: 60 }],
      series: [{}, { label: metric.aggregation, stroke: "#1f5fa8", fill: "#1f5fa81f", points: { show: one.points.length < 60 } }],
    },
    [times, values],
  );
  figure.append(
    el(
      "details",
      {},
      el("summary", {}, "The points as a table"),
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Time"), el("th", { scope: "col" }, "Value"))),
          el(
            "tbody",
            {},
            one.points.map((p) => el("tr", {}, el("td", {}, fmtTime(p.time)), el("td", { class: "num" }, p.value === null ? "—" : fmtNumber(p.value)))),
          ),
        ),
      ),
    ),
  );
}
