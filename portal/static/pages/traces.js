// Traces: the search (GET /api/traces: service, span name, status, duration bounds, time
// range; newest first, older pages on `next`), and one trace (GET /api/traces/{id}) as a
// waterfall: a row per span, nested under its parent, its bar placed and sized on the
// trace's time axis; a row opens (click, Enter or Space) the span's attributes and events.
import { api, clear, el, field, fmtDuration, fmtNumber, fmtTime, heading, link, showError, uid } from "../app.js";
import { attributeList, keepInAddress, msOf, pager, qs, timeRange } from "../observe.js";

export async function render(main, params) {
  if (params.id) return renderTrace(main, params.id, params.query);
  return renderSearch(main, params.query);
}

async function renderSearch(main, query) {
  const service = el("input", { name: "serviceName", value: query.get("serviceName") || "", autocomplete: "off" });
  const spanName = el("input", { name: "spanName", value: query.get("spanName") || "", autocomplete: "off" });
  const status = el(
    "select",
    { name: "statusCode" },
    el("option", { value: "" }, "Any"),
    ["Unset", "Ok", "Error"].map((s) => el("option", { value: s }, s)),
  );
  status.value = query.get("statusCode") || "";
  const minDuration = el("input", { name: "minDuration", value: query.get("minDuration") || "", placeholder: "250ms", autocomplete: "off" });
  const maxDuration = el("input", { name: "maxDuration", value: query.get("maxDuration") || "", placeholder: "2s", autocomplete: "off" });
  const range = timeRange(query);
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Trace search" },
    field("Service", service),
    field("Span name", spanName),
    field("Status", status),
    field("Min duration", minDuration, "Like 250ms or 2s."),
    field("Max duration", maxDuration),
    range.node,
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Search")),
  );
  const errors = el("div");
  const body = el("tbody");
  const count = el("p", { class: "hint", role: "status" });
  const results = el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "traces" },
      el("caption", { class: "visually-hidden" }, "Traces, newest first"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ["Started", "Root span", "Service", "Duration", "Spans", "Errors", "App"].map((c) => el("th", { scope: "col" }, c)),
        ),
      ),
      body,
    ),
  );
  let loaded = 0;
  const search = () => ({
    serviceName: service.value.trim(),
    spanName: spanName.value.trim(),
    statusCode: status.value,
    minDuration: minDuration.value.trim(),
    maxDuration: maxDuration.value.trim(),
    ...range.bounds(),
  });
  const addRows = (traces) => {
    loaded += traces.length;
    count.textContent = `${loaded} trace${loaded === 1 ? "" : "s"} loaded.`;
    body.append(
      ...traces.map((t) =>
        el(
          "tr",
          { dataset: { traceId: t.traceId } },
          el("td", {}, el("time", { datetime: t.startTime }, fmtTime(t.startTime))),
          el("td", {}, link(`/traces/${t.traceId}`, t.rootSpanName || `(no root) ${t.traceId.slice(0, 8)}…`)),
          el("td", {}, t.rootServiceName || t.services.join(", ")),
          el("td", { class: "num" }, fmtDuration(t.durationMs)),
          el("td", { class: "num" }, fmtNumber(t.spanCount)),
          el("td", { class: "num" }, t.errorCount ? el("span", { class: "kind kind-error" }, fmtNumber(t.errorCount)) : "0"),
          el("td", {}, t.appName),
        ),
      ),
    );
  };
  // Each search has a number: an answer to an older one arriving late is dropped.
  let generation = 0;
  let applied = null; // the filters the cursor belongs to
  const more = pager(async (cursor) => {
    const mine = generation;
    const page = await api("GET", `/api/traces${qs({ ...applied, cursor })}`);
    if (mine !== generation) return undefined;
    addRows(page.traces);
    return page.next;
  });
  async function load() {
    const mine = ++generation;
    clear(errors);
    clear(body);
    loaded = 0;
    applied = search();
    keepInAddress({ ...applied, ...range.state() });
    try {
      const page = await api("GET", `/api/traces${qs(applied)}`);
      if (mine !== generation) return;
      addRows(page.traces);
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
  main.append(heading("Traces"), form, errors, count, results, more.node);
  await load();
  return () => more.stop();
}

async function renderTrace(main, traceId, query) {
  const trace = await api("GET", `/api/traces/${encodeURIComponent(traceId)}${qs({ appName: query.get("appName") })}`);
  const start = msOf(trace.startTime);
  const total = Math.max(trace.durationNs / 1e6, 1e-6);
  const byId = new Map(trace.spans.map((s) => [s.spanId, s]));
  // Roots: spans without a parent, or whose parent is not in the trace (yet, or truncated).
  const children = new Map();
  const roots = [];
  for (const span of trace.spans) {
    if (span.parentSpanId && byId.has(span.parentSpanId)) {
      if (!children.has(span.parentSpanId)) children.set(span.parentSpanId, []);
      children.get(span.parentSpanId).push(span);
    } else roots.push(span);
  }
  const byStart = (a, b) => msOf(a.startTime) - msOf(b.startTime);
  const ordered = [];
  const walk = (span, depth) => {
    ordered.push([span, depth]);
    for (const child of (children.get(span.spanId) || []).sort(byStart)) walk(child, depth + 1);
  };
  for (const root of roots.sort(byStart)) walk(root, 0);

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) =>
    el("span", { class: "tick", dataset: { at: String(f) } }, fmtDuration(total * f)),
  );
  const axis = el("div", { class: "wf-axis", "aria-hidden": "true" }, el("span", { class: "wf-label" }, "Span"), el("span", { class: "wf-ticks" }, ticks));
  for (const tick of ticks) tick.style.left = `${Number(tick.dataset.at) * 100}%`;

  const rows = el("ol", { class: "waterfall", "aria-label": "Spans by start time, nested under their parents" });
  for (const [span, depth] of ordered) rows.append(spanRow(span, depth, start, total));

  main.append(
    heading(`Trace ${trace.traceId}`),
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Started"),
      el("dd", {}, el("time", { datetime: trace.startTime }, fmtTime(trace.startTime))),
      el("dt", {}, "Duration"),
      el("dd", {}, fmtDuration(trace.durationMs)),
      el("dt", {}, "Spans"),
      el("dd", {}, fmtNumber(trace.spanCount), trace.truncated ? " (truncated)" : ""),
      el("dt", {}, "Services"),
      el("dd", {}, trace.services.join(", ")),
    ),
    el("p", {}, link("/traces", "Back to the trace search"), " · ", link(`/logs?traceId=${trace.traceId}&range=all`, "Logs of this trace")),
    el("p", { class: "hint" }, "Each row is a span; press Enter or click it to see its attributes and events."),
    axis,
    rows,
  );
}

function spanRow(span, depth, start, total) {
  const offset = msOf(span.startTime) - start;
  const left = Math.min(100, Math.max(0, (offset / total) * 100));
  const width = Math.max(0.4, Math.min(100 - left, (span.durationNs / 1e6 / total) * 100));
  const bar = el("span", { class: `wf-bar${span.statusCode === "Error" ? " wf-error" : ""}` });
  bar.style.left = `${left}%`;
  bar.style.width = `${width}%`;
  const name = el(
    "span",
    { class: "wf-label" },
    el("span", { class: "wf-name" }, span.name),
    el("span", { class: "wf-service" }, ` ${span.serviceName}`),
  );
  name.style.paddingLeft = `${depth * 1.1}rem`;
  const detailsId = uid("span");
  const button = el(
    "button",
    {
      type: "button",
      class: "wf-row",
      "aria-expanded": "false",
      "aria-controls": detailsId,
      dataset: { spanId: span.spanId, depth: String(depth) },
    },
    name,
    el(
      "span",
      { class: "wf-track" },
      bar,
      el("span", { class: "wf-duration" }, `${fmtDuration(span.durationMs)}${span.statusCode === "Error" ? " · error" : ""}`),
    ),
  );
  const details = el("div", { class: "wf-details", id: detailsId, hidden: true });
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    if (open && !details.childElementCount) details.append(...spanDetails(span, start));
    details.hidden = !open;
  });
  return el("li", { dataset: { spanId: span.spanId } }, button, details);
}

function spanDetails(span, start) {
  const at = (iso) => `+${fmtDuration(msOf(iso) - start)}`;
  return [
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Span ID"),
      el("dd", {}, el("code", {}, span.spanId)),
      el("dt", {}, "Parent"),
      el("dd", {}, span.parentSpanId ? el("code", {}, span.parentSpanId) : "none (a root)"),
      el("dt", {}, "Kind"),
      el("dd", {}, span.kind),
      el("dt", {}, "Status"),
      el("dd", {}, span.statusCode, span.statusMessage ? `: ${span.statusMessage}` : ""),
      el("dt", {}, "Start"),
      el("dd", {}, `${fmtTime(span.startTime)} (${at(span.startTime)})`),
      el("dt", {}, "Duration"),
      el("dd", {}, `${fmtDuration(span.durationMs)} (${fmtNumber(span.durationNs)} ns)`),
    ),
    el("h2", {}, "Attributes"),
    attributeList(span.attributes),
    el("h2", {}, "Events"),
    span.events.length
      ? el(
          "ol",
          { class: "span-events" },
          span.events.map((e) => el("li", {}, el("strong", {}, e.name || "(unnamed)"), ` at ${at(e.time)}`, attributeList(e.attributes))),
        )
      : el("p", { class: "hint" }, "none"),
    el("h2", {}, "Resource"),
    attributeList(span.resourceAttributes),
  ];
}
