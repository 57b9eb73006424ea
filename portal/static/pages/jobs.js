// CI jobs. /jobs: the caller's tenants (GET /api/tenants) and a tenant's jobs, newest first,
// paged by the UUID cursors (GET /api/tenants/{id}/jobs?starting_after=|ending_before=).
// /jobs/:id: one job (GET /api/jobs/{id}): its tasks and statuses, start and cancel, the
// manifest (text), and the log of each step following while the job runs: each step's log is
// asked again with `?since=` set to the `Hutch-Log-Next` of the answer before, so only new
// lines come (query/jobs/logs.py).
import { api, apiText, clearErrors, el, field, fmtTime, heading, link, showError, table } from "../app.js";

const PAGE = 10; // jobs a page, unless the address says ?limit= (1-100, as the API takes)
const POLL_MS = 1000;
const ENDED = new Set(["success", "failed", "timeout", "cancelled"]);

export async function render(main, params) {
  if (params.id) return job(main, params.id);
  return listing(main, params);
}

async function listing(main, params) {
  const { tenants } = await api("GET", "/api/tenants");
  const wanted = params.query.get("tenant") || (tenants[0] && tenants[0].id) || "";
  const tenantSelect = el(
    "select",
    { name: "tenant" },
    tenants.map((t) => el("option", { value: t.id, selected: t.id === wanted }, `${t.name} (${t.kind})`)),
  );
  const form = el("form", { class: "card inline", novalidate: true }, field("Tenant", tenantSelect), el("button", { type: "submit" }, "Show"));
  const result = el("section", { "aria-live": "polite", "aria-label": "Jobs" });
  main.append(heading("Jobs"), form, result);
  if (!tenants.length) {
    result.append(el("p", {}, "You belong to no tenant."));
    return;
  }
  const size = Number(params.query.get("limit")) || PAGE;
  const load = async (cursor) => {
    clearErrors(form);
    const query = new URLSearchParams({ limit: String(size), ...cursor });
    try {
      const body = await api("GET", `/api/tenants/${encodeURIComponent(tenantSelect.value)}/jobs?${query}`);
      result.replaceChildren(...jobsView(body, cursor, size, load));
    } catch (err) {
      result.replaceChildren();
      showError(form, err);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", `?tenant=${encodeURIComponent(tenantSelect.value)}${size === PAGE ? "" : `&limit=${size}`}`);
    load({});
  });
  await load({});
}

function jobsView(body, cursor, size, load) {
  if (!body.jobs.length) return [el("p", {}, "No jobs here.")];
  const rows = body.jobs.map((j) => [
    link(`/jobs/${j.id}`, `#${j.id}`),
    el("span", { class: `status status-${j.status}` }, j.status),
    j.note || "—",
    j.tags.join(", ") || "—",
    j.owner,
    j.tasks.map((t) => `${t.name}: ${t.status}`).join(", ") || "—",
    fmtTime(j.created),
  ]);
  const node = table(["Job", "Status", "Note", "Tags", "Owner", "Tasks", "Created"], rows, `Jobs, newest first (${body.total_count} in all)`);
  node.querySelector("table").classList.add("jobs");
  const first = body.jobs[0].uuid;
  const last = body.jobs[body.jobs.length - 1].uuid;
  // Newer: there are some unless this is the first page; older: unless a page came short.
  const atStart = !cursor.starting_after && !cursor.ending_before;
  const newer = el("button", { type: "button", class: "secondary", disabled: atStart, onclick: () => load({ ending_before: first }) }, "Newer");
  const older = el(
    "button",
    { type: "button", class: "secondary", disabled: body.jobs.length < size && !cursor.ending_before, onclick: () => load({ starting_after: last }) },
    "Older",
  );
  return [node, el("div", { class: "pager" }, newer, " ", older)];
}

async function job(main, id) {
  const summary = el("section", { "aria-label": "Job" });
  const actions = el("div", { class: "actions" });
  const logs = el("section", { "aria-labelledby": "job-logs" }, el("h2", { id: "job-logs" }, "Log"));
  const manifest = el("details", { class: "manifest" }, el("summary", {}, "Manifest"));
  main.append(heading(`Job #${id}`), actions, summary, logs, manifest);

  let current = await api("GET", `/api/jobs/${encodeURIComponent(id)}`);
  const steps = new Map(); // step -> {pre, since}
  const stepOf = (name) => {
    if (!steps.has(name)) {
      const pre = el("pre", { class: "log", role: "log", tabindex: "0", "aria-label": `Log of ${name}` });
      logs.append(el("h3", {}, name === "setup" ? "Setup" : `Task ${name}`), pre);
      steps.set(name, { pre, since: 0 });
    }
    return steps.get(name);
  };

  const draw = () => {
    summary.replaceChildren(
      el(
        "dl",
        { class: "job-facts" },
        el("dt", {}, "Status"),
        el("dd", {}, el("span", { class: `status status-${current.status} job-status` }, current.status)),
        el("dt", {}, "Owner"),
        el("dd", {}, current.owner),
        el("dt", {}, "Image"),
        el("dd", {}, current.image || "—"),
        el("dt", {}, "Note"),
        el("dd", {}, current.note || "—"),
        el("dt", {}, "Runner"),
        el("dd", {}, current.runner || "—"),
        el("dt", {}, "Created"),
        el("dd", {}, fmtTime(current.created)),
      ),
      (() => {
        const t = table(["Task", "Status"], current.tasks.map((task) => [task.name, el("span", { class: `status status-${task.status}` }, task.status)]), "Tasks");
        t.querySelector("table").classList.add("tasks");
        return t;
      })(),
    );
    actions.replaceChildren(
      el("button", { type: "button", disabled: current.status !== "pending", onclick: () => act("start") }, "Start"),
      " ",
      el("button", { type: "button", class: "secondary", disabled: ENDED.has(current.status), onclick: () => act("cancel") }, "Cancel job"),
    );
  };

  const act = async (what) => {
    clearErrors(actions);
    try {
      await api("POST", `/api/jobs/${encodeURIComponent(id)}/${what}`);
      current = await api("GET", `/api/jobs/${encodeURIComponent(id)}`);
      draw();
      schedule();
    } catch (err) {
      showError(actions, err);
    }
  };

  // New lines of each step, from where the last answer ended.
  const follow = async () => {
    const names = ["setup", ...current.tasks.map((t) => t.name)];
    for (const name of names) {
      const step = stepOf(name);
      const path = name === "setup" ? `/api/jobs/${encodeURIComponent(id)}/log` : `/api/jobs/${encodeURIComponent(id)}/tasks/${encodeURIComponent(name)}/log`;
      const { text, headers } = await apiText(`${path}?since=${step.since}`);
      const next = headers.get("Hutch-Log-Next");
      if (next !== null) step.since = Number(next);
      if (text) {
        const stick = step.pre.scrollTop + step.pre.clientHeight >= step.pre.scrollHeight - 4;
        step.pre.append(text.endsWith("\n") ? text : `${text}\n`);
        if (stick) step.pre.scrollTop = step.pre.scrollHeight;
      }
    }
  };

  // One request for the log at a time: two at once would both append the same new lines.
  let chain = Promise.resolve();
  const followed = () => (chain = chain.catch(() => {}).then(follow));

  const state = el("p", { class: "meta follow-state", role: "status" });
  logs.append(state);
  let timer = null;
  let left = false;
  const tick = async () => {
    timer = null;
    try {
      await followed();
      const before = current.status;
      current = await api("GET", `/api/jobs/${encodeURIComponent(id)}`);
      if (current.status !== before) draw();
    } catch (err) {
      showError(logs, err);
    }
    schedule();
  };
  const schedule = () => {
    if (left || timer !== null) return;
    if (ENDED.has(current.status)) {
      state.textContent = `The job ended (${current.status}); the log is complete.`;
      followed().catch((err) => showError(logs, err)); // the lines sent just before the end
      return;
    }
    state.textContent = `Following the log while the job is ${current.status}…`;
    timer = setTimeout(tick, POLL_MS);
  };

  draw();
  try {
    const { text } = await apiText(`/api/jobs/${encodeURIComponent(id)}/manifest`);
    manifest.append(el("pre", { class: "manifest-text", tabindex: "0", "aria-label": "Manifest" }, text));
  } catch (err) {
    showError(manifest, err);
  }
  await followed();
  schedule();
  return () => {
    left = true;
    if (timer !== null) clearTimeout(timer);
  };
}
