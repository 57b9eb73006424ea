// The SQL console: one read-only ClickHouse SELECT over the caller's own rows (POST /api/sql),
// with `{name:Type}` parameters, the result as a table, errors shown under the query.
import { api, clear, clearErrors, el, field, fmtDuration, fmtNumber, heading, showError, table } from "../app.js";

const EXAMPLE = "SELECT kind, count() AS n\nFROM telemetry_events\nGROUP BY kind\nORDER BY n DESC";

export async function render(main, params) {
  const sql = el("textarea", { name: "sql", rows: "7", spellcheck: "false", class: "mono" });
  sql.value = params.query.get("q") || EXAMPLE;
  const paramsBox = el("textarea", { name: "params", rows: "3", spellcheck: "false", class: "mono" });
  paramsBox.value = "{}";
  const limit = el("input", { name: "limit", type: "number", min: "1", value: "100", class: "narrow" });
  const results = el("section", { "aria-labelledby": "sql-results", "aria-live": "polite" });
  const form = el(
    "form",
    { class: "card", novalidate: true },
    field("Query", sql, "Tables: telemetry_events, flag_evaluations, otel_spans, otel_logs, otel_metrics… only your apps' rows."),
    field("Parameters (JSON)", paramsBox, "Values for {name:Type} in the query, e.g. {\"v\": \"1.0.0\"}."),
    field("Row limit", limit),
    el("button", { type: "submit" }, "Run query"),
  );
  // Ctrl+Enter runs the query from the editor.
  sql.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    let bound;
    try {
      bound = JSON.parse(paramsBox.value.trim() || "{}");
      if (typeof bound !== "object" || bound === null || Array.isArray(bound)) throw new Error("not an object");
    } catch (err) {
      showError(form, { message: `Parameters must be a JSON object (${err.message}).`, field: "params" });
      return;
    }
    const body = { sql: sql.value, params: bound };
    if (limit.value) body.limit = Number(limit.value);
    try {
      show(results, await api("POST", "/api/sql", body));
    } catch (err) {
      clear(results);
      // Hutch names no field for a query ClickHouse refuses: it belongs under the query.
      showError(form, err.field ? err : Object.assign(err, { field: err.field || "sql" }));
    }
  });
  main.append(heading("SQL console"), form, results);
}

function show(results, answer) {
  clear(results);
  const names = answer.columns.map((c) => c.name);
  results.append(
    el("h2", { id: "sql-results" }, "Result"),
    el(
      "p",
      { class: "meta" },
      `${fmtNumber(answer.rowCount)} row(s) in ${fmtDuration(answer.elapsedMs)}`,
      answer.truncated ? ` (cut at the limit of ${fmtNumber(answer.limit)})` : "",
    ),
    table(
      answer.columns.map((c) => el("span", { title: c.type }, c.name)),
      answer.rows,
      `Columns: ${names.join(", ")}`,
    ),
  );
}
