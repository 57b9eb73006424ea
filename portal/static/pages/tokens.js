// Tokens: the caller's live API tokens (never the tokens themselves), create one (shown once;
// a name, an expiry, and scopes: none ticked is a token with all of the developer's rights),
// revoke one.
import { api, clear, clearErrors, el, field, fmtTime, heading, showError, table } from "../app.js";

const LIMIT = 5; // Hutch keeps at most 5 live tokens per developer (POST answers 409 beyond)
const EXPIRIES = [
  ["1month", "In a month"],
  ["2w", "In two weeks"],
  ["1w", "In a week"],
  ["never", "Never"],
];
const SCOPES = [
  ["jobs:read", "Read jobs"],
  ["jobs:write", "Submit and cancel jobs"],
  ["secrets:read", "Read secrets"],
  ["secrets:write", "Change secrets"],
];

export async function render(main) {
  const list = el("section", { "aria-labelledby": "tokens-list" });
  const created = el("div", { "aria-live": "polite" });
  main.append(
    heading("API tokens"),
    el(
      "p",
      {},
      `A token lets a script or the CLI act as you (send it as “Authorization: Bearer …”). `,
      `You can have at most ${LIMIT} at a time: revoke one to make room.`,
    ),
    createForm(list, created),
    created,
    list,
  );
  await refresh(list);
}

function createForm(list, created) {
  const name = el("input", { name: "name", required: true, maxlength: "64", autocomplete: "off" });
  const expires = el(
    "select",
    { name: "expires" },
    EXPIRIES.map(([value, text]) => el("option", { value }, text)),
  );
  const boxes = SCOPES.map(([value, text]) => {
    const box = el("input", { type: "checkbox", name: "scopes", value, id: `scope-${value.replace(":", "-")}` });
    return el("label", { class: "scope-choice", for: box.id }, box, ` ${text} (${value})`);
  });
  const scopes = el(
    "fieldset",
    { class: "field scopes" },
    el("legend", {}, "Scopes"),
    el("p", { class: "hint" }, "Tick none for a token that can do everything you can."),
    boxes,
  );
  const form = el(
    "form",
    { class: "card inline", novalidate: true },
    el("h2", {}, "Create a token"),
    field("Name", name, "Where it is used, e.g. “laptop” or “CI”."),
    field("Expires", expires),
    scopes,
    el("button", { type: "submit" }, "Create token"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    clear(created);
    try {
      const body = { name: name.value.trim(), expires: expires.value };
      const ticked = [...form.querySelectorAll("input[name=scopes]:checked")].map((b) => b.value);
      if (ticked.length) body.scopes = ticked;
      const answer = await api("POST", "/api/tokens", body);
      created.append(tokenCard(answer));
      form.reset();
      await refresh(list);
    } catch (err) {
      showError(form, err);
    }
  });
  return form;
}

function tokenCard(answer) {
  const token = el("code", { class: "secret", id: "new-token" }, answer.token);
  const status = el("span", { role: "status" });
  const copy = el("button", { type: "button", class: "secondary" }, "Copy token");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(answer.token);
      status.textContent = "Copied.";
    } catch {
      getSelection().selectAllChildren(token);
      status.textContent = "Selected: press Ctrl+C to copy.";
    }
  });
  return el(
    "div",
    { class: "card notice" },
    el("h2", {}, `Token “${answer.name}” created`),
    el("p", {}, "It is shown this once. Expires: ", fmtTime(answer.expiresAt), "."),
    el("p", {}, token, " ", copy, " ", status),
  );
}

async function refresh(list) {
  const { tokens } = await api("GET", "/api/tokens");
  clear(list);
  list.append(el("h2", { id: "tokens-list" }, `Your tokens (${tokens.length} of ${LIMIT})`));
  if (!tokens.length) {
    list.append(el("p", {}, "No tokens."));
    return;
  }
  list.append(
    table(
      ["Name", "Starts with", "Scopes", "Created", "Expires", "Revoke"],
      tokens.map((t) => [
        t.name,
        el("code", {}, `${t.prefix}…`),
        t.scopes ? t.scopes.join(", ") : "everything",
        fmtTime(t.createdAt),
        t.expired ? "expired" : t.expiresAt ? fmtTime(t.expiresAt) : "never",
        revokeButton(t, list),
      ]),
    ),
  );
}

function revokeButton(token, list) {
  const button = el("button", { type: "button", class: "danger" }, `Revoke ${token.name}`);
  button.addEventListener("click", async () => {
    if (!confirm(`Revoke the token “${token.name}”? Whatever uses it stops working.`)) return;
    try {
      await api("DELETE", `/api/tokens/${encodeURIComponent(token.id)}`);
      await refresh(list);
    } catch (err) {
      showError(list, err);
    }
  });
  return button;
}
