// Feature flags: an app's flags (GET /api/apps/{app}/flags), one edited or created in a form
// (PUT /api/apps/{app}/flags/{name}: enabled, rollout, stickiness, variants and rules, the last
// two as JSON) with Hutch's validation error shown next to the control its field names, and
// the flag's exposures over time (GET /api/flags/{name}/stats) as a chart.
import { ApiError, api, chart, clearErrors, el, field, fmtTime, heading, showError, table } from "../app.js";

const COLOURS = ["#1d4ed8", "#a4161a", "#166534", "#7c2d12", "#6b21a8"];
const HOUR = 3600; // the stats' bucket this page asks for (bucket=1h)

export async function render(main, params) {
  const { apps } = await api("GET", "/api/apps");
  const wanted = params.query.get("app") || (apps[0] && apps[0].name) || "";
  const appSelect = el(
    "select",
    { name: "app" },
    apps.map((a) => el("option", { value: a.name, selected: a.name === wanted }, a.name)),
  );
  const pick = el("form", { class: "card inline", novalidate: true }, field("App", appSelect), el("button", { type: "submit" }, "Show"));
  const list = el("section", { "aria-labelledby": "flag-list", "aria-live": "polite" });
  const editor = el("section", { "aria-labelledby": "flag-edit" });
  const stats = el("section", { "aria-labelledby": "flag-stats" });
  main.append(heading("Flags"), pick, list, editor, stats);
  if (!apps.length) {
    list.append(el("p", {}, "You have no apps yet."));
    return;
  }

  const load = async (selected) => {
    clearErrors(pick);
    const app = appSelect.value;
    let flags = [];
    try {
      ({ flags } = await api("GET", `/api/apps/${encodeURIComponent(app)}/flags`));
    } catch (err) {
      showError(pick, err);
      return;
    }
    const rows = flags.map((f) => [
      el("button", { type: "button", class: "link", onclick: () => open(f.flag) }, f.flag.name),
      f.flag.enabled ? "on" : "off",
      `${f.flag.rollout}%`,
      (f.flag.variants || []).map((v) => v.name).join(", ") || "—",
      String((f.flag.rules || []).length),
      fmtTime(f.updatedAt),
    ]);
    const node = rows.length
      ? table(["Flag", "Enabled", "Rollout", "Variants", "Rules", "Updated"], rows, `Flags of ${app}`)
      : el("p", {}, `${app} has no flags yet.`);
    node.querySelector?.("table")?.classList.add("flags");
    list.replaceChildren(el("h2", { id: "flag-list" }, "Flags"), node);
    const current = flags.find((f) => f.flag.name === selected);
    open(current ? current.flag : null);
  };

  const open = (flag) => {
    editor.replaceChildren(...form(appSelect.value, flag, load));
    stats.replaceChildren();
    if (flag) exposures(stats, appSelect.value, flag.name);
  };

  pick.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", `?app=${encodeURIComponent(appSelect.value)}`);
    load(null);
  });
  await load(params.query.get("flag"));
}

// The edit form; a new flag when `flag` is null.
function form(app, flag, reload) {
  const name = el("input", { name: "name", value: flag ? flag.name : "", required: true, readonly: flag ? true : null, autocomplete: "off" });
  const enabled = el("input", { type: "checkbox", name: "enabled", checked: flag ? flag.enabled : false });
  const rollout = el("input", { type: "number", name: "rollout", value: String(flag ? flag.rollout : 100), inputmode: "numeric" });
  const stickiness = el("input", { name: "stickiness", value: flag && flag.stickiness ? flag.stickiness : "", placeholder: "userId" });
  const variants = el("textarea", { name: "variants", rows: "4", spellcheck: "false" });
  variants.value = JSON.stringify(flag ? flag.variants || [] : [], null, 1);
  const rules = el("textarea", { name: "rules", rows: "4", spellcheck: "false" });
  rules.value = JSON.stringify(flag ? flag.rules || [] : [], null, 1);
  const saved = el("p", { class: "ok", role: "status" });
  const node = el(
    "form",
    { class: "card flag-form", novalidate: true },
    field("Name", name, flag ? "A flag's name is fixed; create another to rename." : "Letters, digits, . _ -"),
    el("div", { class: "field" }, el("label", {}, enabled, " Enabled")),
    field("Rollout (%)", rollout, "0 to 100: the share of users (by stickiness) who get the flag."),
    field("Stickiness", stickiness, "The context attribute users are bucketed by (default userId, targetingKey, sessionId)."),
    field("Variants (JSON)", variants, 'e.g. [{"name": "blue", "weight": 1}]'),
    field("Rules (JSON)", rules, 'e.g. [{"constraints": [{"contextName": "country", "operator": "IN", "values": ["NZ"]}], "variant": "blue"}]'),
    el("button", { type: "submit" }, flag ? "Save flag" : "Create flag"),
    saved,
  );
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(node);
    saved.textContent = "";
    const body = { enabled: enabled.checked, rollout: rollout.value === "" ? null : Number(rollout.value) };
    if (stickiness.value.trim()) body.stickiness = stickiness.value.trim();
    for (const [key, control] of [["variants", variants], ["rules", rules]]) {
      try {
        body[key] = JSON.parse(control.value || "[]");
      } catch (err) {
        showError(node, new ApiError(400, "bad_json", `${key}: not JSON (${err.message})`, key));
        return;
      }
    }
    try {
      const path = `/api/apps/${encodeURIComponent(app)}/flags/${encodeURIComponent(name.value.trim())}`;
      const answer = await api("PUT", path, body);
      await reload(answer.flag.name);
      const status = document.querySelector(".flag-form p.ok");
      if (status) status.textContent = `Saved ${answer.flag.name} at ${fmtTime(answer.updatedAt)}.`;
    } catch (err) {
      showError(node, inPlace(err));
    }
  });
  return [el("h2", { id: "flag-edit" }, flag ? `Edit ${flag.name}` : "New flag"), node];
}

// Hutch names a nested field ("variants[0].weight", "rules[1].constraints[0].operator"): the
// error goes next to the control that holds it, its message keeping the full path.
function inPlace(err) {
  if (!(err instanceof ApiError) || !err.field) return err;
  const root = err.field.split(/[.[]/)[0];
  const message = err.field === root || err.message.includes(err.field) ? err.message : `${err.field}: ${err.message}`;
  return new ApiError(err.status, err.code, message, root);
}

async function exposures(section, app, name) {
  section.append(el("h2", { id: "flag-stats" }, `Exposures of ${name}`));
  let body;
  try {
    body = await api("GET", `/api/flags/${encodeURIComponent(name)}/stats?appName=${encodeURIComponent(app)}&bucket=1h`);
  } catch (err) {
    showError(section, err);
    return;
  }
  const t = body.total;
  const variantNames = Object.keys(t.variants).sort();
  section.append(
    el(
      "p",
      { class: "meta exposure-total" },
      `${t.exposures} exposures from ${fmtTime(body.since)} to ${fmtTime(body.until)}: ${t.enabled} enabled, ${t.disabled} disabled`,
      variantNames.length ? `; ${variantNames.map((v) => `${v} ${t.variants[v]}`).join(", ")}` : "",
      ".",
    ),
  );
  if (!body.buckets.length) {
    section.append(el("p", {}, "No evaluations reported in the last day."));
    return;
  }
  const plot = el("figure", { class: "chart", "aria-label": `Exposures of ${name} per hour` });
  section.append(plot);
  // Every hour of the range, empty ones at 0: the answer lists only buckets with evaluations,
  // and a lone point would leave uPlot to guess the time axis.
  const byStart = new Map(body.buckets.map((b) => [Math.floor(Date.parse(b.start) / 1000), b]));
  const first = Math.min(...byStart.keys());
  const xs = [];
  for (let t = first - Math.ceil((first - Date.parse(body.since) / 1000) / HOUR) * HOUR; t < Date.parse(body.until) / 1000; t += HOUR) xs.push(t);
  const at = (t) => byStart.get(t) || { enabled: 0, disabled: 0, variants: {} };
  const series = [
    { label: "enabled", values: xs.map((t) => at(t).enabled) },
    { label: "disabled", values: xs.map((t) => at(t).disabled) },
    ...variantNames.map((v) => ({ label: `variant ${v}`, values: xs.map((t) => at(t).variants[v] || 0) })),
  ];
  await chart(
    plot,
    {
      height: 220,
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: true } }))],
    },
    [xs, ...series.map((s) => s.values)],
  );
  plot.append(el("figcaption", { class: "meta" }, `Evaluations reported per hour, by outcome and variant (${body.bucket} buckets).`));
}
