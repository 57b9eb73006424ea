// Flag impact: per variant of one flag, its exposures, the users exposed, and the error rate
// of those users' telemetry after their first exposure, against users never exposed.
// Backed by GET /api/flags/{name}/impact.
import { api, clearErrors, el, field, fmtNumber, fmtTime, heading, showError, table } from "../app.js";

export async function render(main, params) {
  const { apps } = await api("GET", "/api/apps");
  const name = el("input", { name: "name", required: true, autocomplete: "off", value: params.query.get("flag") || "" });
  const appSelect = el(
    "select",
    { name: "appName" },
    el("option", { value: "" }, "All my apps"),
    apps.map((a) => el("option", { value: a.name, selected: a.name === params.query.get("app") }, a.name)),
  );
  const days = el("input", { name: "since", type: "number", min: "1", max: "90", value: params.query.get("days") || "7" });
  const form = el(
    "form",
    { class: "card inline", novalidate: true },
    field("Flag", name, "The flag's name, e.g. dark_mode."),
    field("App", appSelect),
    field("Days", days, "The last 1 to 90 days."),
    el("button", { type: "submit" }, "Show impact"),
  );
  const result = el("section", { "aria-live": "polite", "aria-label": "Impact" });
  main.append(heading("Flag impact"), form, result);
  const load = async () => {
    clearErrors(form);
    if (!name.value.trim()) {
      showError(form, { message: "Name a flag.", field: "name" });
      return;
    }
    const query = new URLSearchParams();
    if (appSelect.value) query.set("appName", appSelect.value);
    const span = Number(days.value);
    if (Number.isFinite(span) && span > 0) {
      const until = new Date();
      query.set("until", until.toISOString());
      query.set("since", new Date(until.getTime() - span * 86_400_000).toISOString());
    } else {
      query.set("since", days.value);
    }
    result.replaceChildren(el("p", { class: "meta" }, "Loading…"));
    try {
      const body = await api("GET", `/api/flags/${encodeURIComponent(name.value.trim())}/impact?${query}`);
      result.replaceChildren(...view(body));
    } catch (err) {
      result.replaceChildren();
      showError(form, err);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  if (name.value) await load();
}

function rate(value) {
  return value === null || value === undefined ? "—" : value.toFixed(1);
}

function view(body) {
  const note = el(
    "p",
    { class: "meta" },
    `${body.apps.join(", ") || "No apps"}, ${fmtTime(body.since)} to ${fmtTime(body.until)}. `,
    `Users are ${body.userKeys.evaluations.join(" or ")} in evaluations and ${body.userKeys.telemetry} in telemetry; `,
    "their events count from their first exposure to the variant. Rates are errors per thousand of those events.",
  );
  if (!body.variants.length) return [note, el("p", {}, `No exposures of ${body.flag} in this range.`)];
  const baseline = body.notExposed.errorsPerThousandEvents;
  const rows = body.variants.map((v) => {
    const after = v.afterExposure;
    const worse = after.errorsPerThousandEvents !== null && baseline !== null && after.errorsPerThousandEvents > baseline;
    const label = el(worse ? "strong" : "span", {}, worse ? `${rate(after.errorsPerThousandEvents)} (worse than not exposed)` : rate(after.errorsPerThousandEvents));
    if (worse) label.style.color = "var(--danger)";
    return [v.variant, fmtNumber(v.exposures), fmtNumber(v.usersExposed), fmtNumber(after.events), fmtNumber(after.errors), label, fmtNumber(after.usersWithErrors)];
  });
  const n = body.notExposed;
  rows.push([el("em", {}, "not exposed"), "—", fmtNumber(n.users), fmtNumber(n.events), fmtNumber(n.errors), rate(baseline), fmtNumber(n.usersWithErrors)]);
  const columns = ["Variant", "Exposures", "Users", "Events after exposure", "Errors", "Errors / 1k events", "Users with errors"];
  return [note, table(columns, rows, `Impact of ${body.flag} per variant`)];
}
