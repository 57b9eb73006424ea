// Apps: the caller's apps; create one (its secret shown once, with a copy button), change how
// long its analytics rows are kept, upload its icon.
import { api, clear, clearErrors, el, field, fmtTime, heading, showError, table } from "../app.js";

export async function render(main) {
  const list = el("section", { "aria-labelledby": "apps-list" });
  const created = el("div", { class: "created", "aria-live": "polite" });
  main.append(heading("Apps"), createForm(list, created), created, list);
  await refresh(list);
}

function createForm(list, created) {
  const name = el("input", { name: "name", required: true, autocomplete: "off", pattern: "[a-z0-9][a-z0-9_\\-]{0,62}" });
  const days = el("input", { name: "retentionDays", type: "number", min: "1", max: "3650", value: "30" });
  const form = el(
    "form",
    { class: "card inline", novalidate: true },
    el("h2", {}, "Create an app"),
    field("Name", name, "Lowercase letters, digits, - and _."),
    field("Retention (days)", days),
    el("button", { type: "submit" }, "Create app"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    clear(created);
    try {
      const body = { name: name.value.trim(), retentionDays: Number(days.value) };
      const answer = await api("POST", "/api/apps", body);
      created.append(secretCard(answer));
      form.reset();
      await refresh(list);
    } catch (err) {
      showError(form, err);
    }
  });
  return form;
}

// The secret is in POST's answer only: shown here once, never fetched again.
function secretCard(answer) {
  const secret = el("code", { class: "secret", id: "new-secret" }, answer.secret);
  const status = el("span", { class: "copied", role: "status" });
  const copy = el("button", { type: "button", class: "secondary" }, "Copy secret");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(answer.secret);
      status.textContent = "Copied.";
    } catch {
      // Without clipboard access (an insecure origin), select it for a manual copy.
      getSelection().selectAllChildren(secret);
      status.textContent = "Selected: press Ctrl+C to copy.";
    }
  });
  return el(
    "div",
    { class: "card notice" },
    el("h2", {}, `App “${answer.app}” created`),
    el("p", {}, "Its secret is shown this once. Keep it where your app's builds can read it."),
    el("p", {}, secret, " ", copy, " ", status),
  );
}

async function refresh(list) {
  const { apps } = await api("GET", "/api/apps");
  clear(list);
  list.append(el("h2", { id: "apps-list" }, `Your apps (${apps.length})`));
  if (!apps.length) {
    list.append(el("p", {}, "No apps yet: create one above."));
    return;
  }
  list.append(
    table(
      ["Name", "Created", "Retention (days)", "Icon"],
      apps.map((app) => [el("strong", {}, app.name), fmtTime(app.createdAt), retention(app), icon(app)]),
    ),
  );
}

function retention(app) {
  const input = el("input", {
    name: "retentionDays",
    type: "number",
    min: "1",
    max: "3650",
    value: String(app.retentionDays),
    class: "narrow",
  });
  const form = el(
    "form",
    { class: "row", novalidate: true },
    field(`Retention of ${app.name} in days`, input),
    el("button", { type: "submit", class: "secondary" }, "Save"),
  );
  form.querySelector("label").classList.add("visually-hidden");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const answer = await api("PATCH", `/api/apps/${encodeURIComponent(app.name)}`, {
        retentionDays: Number(input.value),
      });
      form.append(el("span", { class: "ok", role: "status" }, `Saved: ${answer.retentionDays} days.`));
    } catch (err) {
      showError(form, err);
    }
  });
  return form;
}

function icon(app) {
  const input = el("input", { name: "icon", type: "file", accept: "image/png,image/jpeg,image/gif,image/webp" });
  const form = el("form", { class: "row" }, field(`Icon of ${app.name}`, input));
  form.querySelector("label").classList.add("visually-hidden");
  input.addEventListener("change", async () => {
    clearErrors(form);
    const file = input.files[0];
    if (!file) return;
    try {
      const answer = await api("PUT", `/api/apps/${encodeURIComponent(app.name)}/icon`, file);
      form.querySelector("img.icon")?.remove();
      form.append(el("img", { src: answer.iconUrl, alt: `${app.name}'s icon`, class: "icon" }));
    } catch (err) {
      // Whatever Hutch names (the body, its Content-Type), it is about the file chosen here.
      err.field = "icon";
      showError(form, err);
    }
  });
  return form;
}
