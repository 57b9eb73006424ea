// Sign in: with GitHub (Hutch's OAuth flow comes back to the portal), or with a pasted API
// token, kept in this tab's sessionStorage only and sent as a bearer.
import { el, field, heading, navigate, showError, usePastedToken, whoami } from "../app.js";

export async function render(main, params) {
  const next = safeNext(params.query.get("next"));
  const who = await whoami();
  if (who.authenticated) {
    await navigate(next || "/apps", { replace: true });
    return;
  }
  const github = `/api/auth/github/login?redirect_uri=${encodeURIComponent(next ? `/portal${next}` : "/portal")}`;
  const input = el("input", {
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const form = el(
    "form",
    { class: "card", onsubmit: (event) => paste(event, form, input, next) },
    el("h2", {}, "Paste an API token"),
    field("API token", input, "From “hutch token create” or the Tokens page. Kept in this tab only."),
    el("button", { type: "submit" }, "Sign in with the token"),
  );
  main.append(
    heading("Sign in to Hutch"),
    el(
      "section",
      { class: "card", "aria-labelledby": "gh" },
      el("h2", { id: "gh" }, "GitHub"),
      el("p", {}, "Sign in with your GitHub account; Hutch makes your developer the first time."),
      el("a", { class: "button", href: github }, "Sign in with GitHub"),
    ),
    form,
  );
}

async function paste(event, form, input, next) {
  event.preventDefault();
  const token = input.value.trim();
  usePastedToken(token);
  let who;
  try {
    who = await whoami(true);
  } catch (err) {
    usePastedToken(null);
    showError(form, err);
    return;
  }
  if (!who.authenticated || who.method !== "bearer") {
    usePastedToken(null);
    const why = who.error ? `: ${who.error}` : "";
    showError(form, { message: `That token does not sign in${why}.`, field: "token" });
    return;
  }
  await navigate(next || "/apps");
}

// Only a path inside the portal may be where sign-in returns to.
function safeNext(value) {
  return value && value.startsWith("/portal/") && !value.startsWith("//") ? value.slice(7) : null;
}
