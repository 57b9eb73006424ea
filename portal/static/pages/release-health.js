// Release health: per version of one app (newest first) its downloads, error and warning
// events per thousand sessions or downloads, first seen, trend; a version whose error rate
// is worse than the one before is marked "regressed" in words and in colour. Backed by
// GET /api/apps/{app}/release-health.
import { api, chart, clearErrors, el, field, fmtNumber, fmtTime, heading, showError, table } from "../app.js";

const DANGER = "var(--danger)";

export async function render(main, params) {
  const { apps } = await api("GET", "/api/apps");
  const wanted = params.query.get("app") || (apps[0] && apps[0].name) || "";
  const appSelect = el(
    "select",
    { name: "app" },
    apps.map((a) => el("option", { value: a.name, selected: a.name === wanted }, a.name)),
  );
  const days = el(
    "select",
    { name: "days" },
    ["7", "14", "30", "90"].map((d) => el("option", { value: d, selected: d === (params.query.get("days") || "14") }, `${d} days`)),
  );
  const form = el(
    "form",
    { class: "card inline", novalidate: true },
    field("App", appSelect),
    field("Range", days),
    el("button", { type: "submit" }, "Show"),
  );
  const result = el("section", { "aria-live": "polite", "aria-label": "Versions" });
  main.append(heading("Release health"), form, result);
  if (!apps.length) {
    result.append(el("p", {}, "You have no apps yet."));
    return;
  }
  const load = async () => {
    clearErrors(form);
    result.replaceChildren(el("p", { class: "meta" }, "Loading…"));
    try {
      const path = `/api/apps/${encodeURIComponent(appSelect.value)}/release-health?days=${days.value}`;
      const body = await api("GET", path);
      result.replaceChildren(...(await view(body)));
    } catch (err) {
      result.replaceChildren();
      showError(form, err);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", `?app=${encodeURIComponent(appSelect.value)}&days=${days.value}`);
    load();
  });
  await load();
}

function rate(value) {
  return value === null || value === undefined ? "—" : value.toFixed(1);
}

async function view(body) {
  const per = body.denominator === "sessions" ? "1k sessions" : "1k downloads";
  const note = el(
    "p",
    { class: "meta" },
    `${fmtTime(body.since)} to ${fmtTime(body.until)}. Rates are per thousand ${body.denominator}`,
    body.denominator === "sessions"
      ? " (distinct bits.sessionId of the version's events)."
      : " (all-time downloads of the version's builds; the telemetry carries no bits.sessionId).",
    ` A version is marked regressed when its error rate is over ${body.regression.ratio}× the previous version's and at least ${body.regression.minDeltaPerThousand} per thousand higher.`,
  );
  if (!body.versions.length) return [note, el("p", {}, "No versions in this range: no builds uploaded and no telemetry with a version.")];
  const rows = body.versions.map((v) => {
    const status = v.regressed
      ? el("strong", { class: "regressed" }, `Regressed (vs ${v.previousVersion})`)
      : el("span", {}, "OK");
    if (v.regressed) status.style.color = DANGER;
    const arrow = { up: "↑ up", down: "↓ down", flat: "→ flat" }[v.trend.direction];
    return [
      v.version,
      status,
      fmtTime(v.firstSeen),
      fmtNumber(v.downloads),
      fmtNumber(v.sessions),
      fmtNumber(v.errors),
      rate(v.errorsPerThousand),
      fmtNumber(v.warnings),
      rate(v.warningsPerThousand),
      `${arrow} (${v.trend.errorsLast7Days} vs ${v.trend.errorsPrevious7Days})`,
    ];
  });
  const columns = ["Version", "Status", "First seen", "Downloads", "Sessions", "Errors", `Errors / ${per}`,
    "Warnings", `Warnings / ${per}`, "Errors, last 7 days vs 7 before"];
  const tableNode = table(columns, rows, `Versions of ${body.app}, newest first`);
  tableNode.querySelectorAll("tbody tr").forEach((tr, i) => {
    if (body.versions[i].regressed) {
      tr.dataset.regressed = "true";
      tr.style.borderLeft = `4px solid ${DANGER}`;
    }
  });
  const plot = el("figure", { class: "chart", "aria-label": "Error rate per version" });
  const caption = el("figcaption", { class: "meta" }, `Errors per ${per}, oldest version on the left.`);
  const nodes = [note, tableNode, plot];
  const ordered = [...body.versions].reverse();
  if (ordered.length > 1) {
    // The chart needs the nodes in the document to know its width: drawn after they are.
    queueMicrotask(() => {
      const xs = ordered.map((_, i) => i);
      chart(
        plot,
        {
          height: 200,
          scales: { x: { time: false } },
          axes: [{ values: (_, ticks) => ticks.map((t) => (ordered[t] ? ordered[t].version : "")) }, {}],
          series: [{}, { label: `Errors / ${per}`, stroke: "#a4161a", width: 2 }],
        },
        [xs, ordered.map((v) => v.errorsPerThousand)],
      ).then(() => plot.append(caption)).catch(() => plot.append(caption));
    });
  }
  return nodes;
}
