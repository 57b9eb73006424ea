// Logs: GET /api/logs by severity, text in the body, service, trace and time range; newest
// first, older pages on `next`; a record's attributes folded, its trace one link away.
import { api, clear, el, field, fmtTime, heading, link, showError } from "../app.js";
import { folded, keepInAddress, pager, qs, timeRange } from "../observe.js";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
const PAGE = 100;

export async function render(main, params) {
  const query = params.query;
  const text = el("input", { name: "q", type: "search", value: query.get("q") || "", autocomplete: "off" });
  const minSeverity = el(
    "select",
    { name: "minSeverity" },
    el("option", { value: "" }, "Any"),
    LEVELS.map((l) => el("option", { value: l }, `${l} and above`)),
  );
  minSeverity.value = query.get("minSeverity") || "";
  const service = el("input", { name: "serviceName", value: query.get("serviceName") || "", autocomplete: "off" });
  const traceId = el("input", { name: "traceId", value: query.get("traceId") || "", autocomplete: "off", spellcheck: "false" });
  const range = timeRange(query);
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Log search" },
    field("Text in the body", text),
    field("Severity", minSeverity),
    field("Service", service),
    field("Trace ID", traceId, "32 hex digits."),
    range.node,
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Search")),
  );
  const count = el("p", { class: "hint", role: "status" });
  const body = el("tbody");
  const results = el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "logs" },
      el("caption", { class: "visually-hidden" }, "Log records, newest first"),
      el(
        "thead",
        {},
        el("tr", {}, ["Time", "Severity", "Service", "Body", "Trace", "Attributes"].map((c) => el("th", { scope: "col" }, c))),
      ),
      body,
    ),
  );
  let loaded = 0;
  const search = () => ({
    q: text.value.trim(),
    minSeverity: minSeverity.value,
    serviceName: service.value.trim(),
    traceId: traceId.value.trim(),
    limit: PAGE,
    ...range.bounds(),
  });
  const addRows = (logs) => {
    loaded += logs.length;
    count.textContent = `${loaded} log record${loaded === 1 ? "" : "s"} loaded.`;
    body.append(
      ...logs.map((r) => {
        const level = (r.severity || "").toLowerCase();
        return el(
          "tr",
          { dataset: { severity: level } },
          el("td", {}, el("time", { datetime: r.time }, fmtTime(r.time))),
          el("td", {}, el("span", { class: `kind sev-${level || "none"}` }, r.severity || r.severityText || "—")),
          el("td", {}, r.serviceName),
          el("td", { class: "log-body" }, r.body),
          el("td", {}, r.traceId ? traceLink(r.traceId) : "—"),
          el("td", {}, folded(r.attributes, "attributes")),
        );
      }),
    );
  };
  // Each search has a number: an answer to an older one arriving late is dropped.
  let generation = 0;
  let applied = null; // the filters the cursor belongs to
  const more = pager(async (cursor) => {
    const mine = generation;
    const page = await api("GET", `/api/logs${qs({ ...applied, cursor })}`);
    if (mine !== generation) return undefined;
    addRows(page.logs);
    return page.next;
  });
  async function load() {
    const mine = ++generation;
    clear(body);
    loaded = 0;
    const state = search();
    applied = state;
    keepInAddress({ ...state, limit: undefined, ...range.state() });
    try {
      const page = await api("GET", `/api/logs${qs(state)}`);
      if (mine !== generation) return;
      addRows(page.logs);
      more.set(page.next);
    } catch (err) {
      showError(form, err);
      more.set(null);
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  main.append(heading("Logs"), form, count, results, more.node);
  await load();
  return () => more.stop();
}

// The short id shown; the name says "Trace" too and keeps the visible text in it.
function traceLink(traceId) {
  const short = `${traceId.slice(0, 8)}…`;
  return link(`/traces/${traceId}`, short, { title: traceId, class: "trace-link", "aria-label": `Trace ${short}` });
}
