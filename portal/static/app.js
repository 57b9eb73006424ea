// The portal's shell: the route table, the router, the one way to call Hutch's API, and the
// helpers every page uses. No build step: plain ES modules, served as they are.
//
// THE PAGE CONTRACT. A page is `pages/<name>.js` exporting
//     export async function render(main, params) { ... }
// `main` is the (emptied) <main> element; `params` holds the route's `:names`, plus `query`
// (URLSearchParams of the address). A page builds its DOM with `el()` (text is always set as
// text, never parsed as HTML: no innerHTML with data), calls Hutch with `api()`, and shows an
// ApiError with `showError()`. It may return a function, called when the page is left (stop a
// timer, a live tail). Register it with one row in ROUTES below.

// One row per page: the path under /portal (":name" is a parameter), the module in pages/,
// the title, whether the nav links it, and whether it needs no sign-in.
export const ROUTES = [
  { path: "/sign-in", page: "signin", title: "Sign in", nav: false, open: true },
  { path: "/apps", page: "apps", title: "Apps", nav: true },
  { path: "/tokens", page: "tokens", title: "Tokens", nav: true },
  { path: "/sql", page: "sql", title: "SQL", nav: true },
  // Observability pages (helper K) and the release-health / flag-impact pages (helper I)
  // add their rows here, e.g. { path: "/traces/:id", page: "trace", title: "Trace", nav: false }.
  { path: "/telemetry", page: "telemetry", title: "Telemetry", nav: true },
  { path: "/traces", page: "traces", title: "Traces", nav: true },
  { path: "/traces/:id", page: "traces", title: "Trace", nav: false },
  { path: "/logs", page: "logs", title: "Logs", nav: true },
  { path: "/metrics", page: "metrics", title: "Metrics", nav: true },
  { path: "/release-health", page: "release-health", title: "Release health", nav: true },
  { path: "/flag-impact", page: "flag-impact", title: "Flag impact", nav: true },
  { path: "/builds", page: "builds", title: "Builds", nav: true },
  { path: "/jobs", page: "jobs", title: "Jobs", nav: true },
  { path: "/jobs/:id", page: "jobs", title: "Job", nav: false },
  { path: "/flags", page: "flags", title: "Flags", nav: true },
];

export const BASE = "/portal";
const TOKEN_KEY = "hutch.token";

// --- calling Hutch --------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

let status = null; // the last GET /api/auth/status answer: who is calling, the CSRF token

export function pastedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function usePastedToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  status = null;
}

// Who is signed in (Hutch's AuthStatus); asked once, again after sign-in or sign-out.
export async function whoami(refresh = false) {
  if (status === null || refresh) status = await api("GET", "/api/auth/status");
  return status;
}

const READS = new Set(["GET", "HEAD"]);

// fetch() with the caller's credential: a pasted token as a bearer, else the session cookies
// (same origin) with the session's CSRF proof on writes. A JSON body is sent as JSON; a Blob
// or File as its bytes. Answers the parsed JSON (null when empty); throws ApiError from
// Hutch's {"error": {code, message, field}} or the HTTP status.
export async function api(method, path, body, { contentType } = {}) {
  const headers = { Accept: "application/json" };
  const token = pastedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (!READS.has(method) && path !== "/api/auth/status") {
    const who = await whoami();
    if (who.csrfToken) headers["X-CSRF-Token"] = who.csrfToken;
  }
  let payload;
  if (body instanceof Blob) {
    payload = body;
    headers["Content-Type"] = contentType || body.type || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, "network", `Hutch could not be reached (${err.message}).`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const e = (data && data.error) || {};
    const message = e.message || text.slice(0, 300) || response.statusText;
    throw new ApiError(response.status, e.code || `http_${response.status}`, message, e.field);
  }
  return data;
}

// A text answer (a job's log, its manifest): GET with the caller's credential; answers
// {text, headers} so a page can read headers such as Hutch-Log-Next. Errors as api()'s.
export async function apiText(path) {
  const headers = { Accept: "text/plain, application/json" };
  const token = pastedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { headers, credentials: "same-origin", cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network", `Hutch could not be reached (${err.message}).`);
  }
  const text = await response.text();
  if (!response.ok) {
    let e = {};
    try {
      e = JSON.parse(text).error || {};
    } catch {
      e = {};
    }
    throw new ApiError(response.status, e.code || `http_${response.status}`, e.message || text.slice(0, 300) || response.statusText, e.field);
  }
  return { text, headers: response.headers };
}

// --- building the page ----------------------------------------------------------------------

// el("a", {href, class, onclick}, "text", child, [more]): attributes set as attributes, on*
// functions as listeners, strings as text nodes; null/false/undefined are left out.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key === "value" && "defaultValue" in node) {
      node.defaultValue = value; // what form.reset() returns to
      node.value = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

let ids = 0;
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

// A labelled form control: field("Name", el("input", {name: "name"}), "hint"). The control
// gets an id, the label points at it, a hint is tied with aria-describedby.
export function field(label, control, hint) {
  const id = control.id || uid(control.name || "f");
  control.id = id;
  const hintNode = hint ? el("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  return el("div", { class: "field" }, el("label", { for: id }, label), control, hintNode);
}

// A table from column names and rows of cells (strings, numbers or nodes).
export function table(columns, rows, caption) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      {},
      caption ? el("caption", {}, caption) : null,
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)))),
      el(
        "tbody",
        {},
        rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cellText(cell))))),
      ),
    ),
  );
}

function cellText(value) {
  if (value instanceof Node) return value;
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function heading(text, ...after) {
  return el("div", { class: "page-head" }, el("h1", { tabindex: "-1" }, text), ...after);
}

// --- errors, shown where they happen --------------------------------------------------------

// Clears what showError put in `form` (or any container).
export function clearErrors(container) {
  for (const node of container.querySelectorAll(".error")) node.remove();
  for (const node of container.querySelectorAll("[aria-invalid]")) {
    node.removeAttribute("aria-invalid");
    const described = (node.getAttribute("aria-describedby") || "")
      .split(" ")
      .filter((id) => !id.endsWith("-error"));
    if (described.length) node.setAttribute("aria-describedby", described.join(" "));
    else node.removeAttribute("aria-describedby");
  }
}

// An error next to the control its `field` names (when `container` holds a control of that
// name), else at the top of `container`. Announced to screen readers (role=alert).
export function showError(container, err) {
  clearErrors(container);
  const message = err instanceof ApiError ? err.message : String(err && err.message ? err.message : err);
  const code = err instanceof ApiError ? err.code : "error";
  const control = err && err.field ? container.querySelector(`[name="${CSS.escape(err.field)}"]`) : null;
  const id = uid("e") + "-error";
  const node = el("p", { class: "error", role: "alert", id, dataset: { code } }, message);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    const described = control.getAttribute("aria-describedby");
    control.setAttribute("aria-describedby", described ? `${described} ${id}` : id);
    control.closest(".field")?.append(node);
    control.focus();
  } else {
    container.prepend(node);
  }
  return node;
}

// --- formatting ------------------------------------------------------------------------------

export function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

export function fmtNumber(value) {
  return typeof value === "number" ? value.toLocaleString("en") : String(value ?? "");
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

// --- charts ----------------------------------------------------------------------------------

// A uPlot chart (vendor/uPlot.esm.js, MIT) in `container`, as wide as it is; loaded on first
// use so pages without charts do not fetch it. `opts` and `data` are uPlot's own.
export async function chart(container, opts, data) {
  const { default: uPlot } = await import("./vendor/uPlot.esm.js");
  const width = Math.max(280, container.clientWidth || 600);
  const plot = new uPlot({ width, height: 240, ...opts }, data, container);
  const resize = new ResizeObserver(() => {
    plot.setSize({ width: Math.max(280, container.clientWidth), height: opts.height || 240 });
  });
  resize.observe(container);
  return plot;
}

// --- routing ---------------------------------------------------------------------------------

function match(pathname) {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) || "/" : pathname;
  const parts = rest.split("/").filter(Boolean);
  for (const route of ROUTES) {
    const want = route.path.split("/").filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    const ok = want.every((piece, i) => {
      if (piece.startsWith(":")) {
        params[piece.slice(1)] = decodeURIComponent(parts[i]);
        return true;
      }
      return piece === parts[i];
    });
    if (ok) return { route, params };
  }
  return null;
}

export function navigate(path, { replace = false } = {}) {
  const target = path.startsWith(BASE) ? path : BASE + path;
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  return show();
}

let leave = null;

async function show() {
  const main = document.getElementById("main");
  if (typeof leave === "function") leave();
  leave = null;
  let who;
  try {
    who = await whoami();
  } catch (err) {
    clear(main);
    showError(main, err);
    return;
  }
  renderHeader(who);
  const url = new URL(location.href);
  const found = match(url.pathname);
  if (!found) {
    if (url.pathname === BASE || url.pathname === `${BASE}/`) {
      return navigate(who.authenticated ? "/apps" : "/sign-in", { replace: true });
    }
    clear(main);
    document.title = "Not found · Hutch";
    append(main, [heading("Not found"), el("p", {}, "No page here. ", link("/apps", "Go to your apps"), ".")]);
    focusHeading(main);
    return;
  }
  const { route, params } = found;
  if (!route.open && !who.authenticated) {
    const next = url.pathname + url.search;
    return navigate(`/sign-in?next=${encodeURIComponent(next)}`, { replace: true });
  }
  document.title = `${route.title} · Hutch`;
  markCurrent(route);
  clear(main);
  main.setAttribute("aria-busy", "true");
  try {
    const page = await import(`./pages/${route.page}.js`);
    leave = await page.render(main, { ...params, query: url.searchParams });
  } catch (err) {
    showError(main, err);
  } finally {
    main.removeAttribute("aria-busy");
  }
  focusHeading(main);
}

function focusHeading(main) {
  // After a client-side navigation, a screen reader starts from the new page's heading.
  if (document.activeElement && document.activeElement !== document.body && main.contains(document.activeElement)) {
    return;
  }
  main.querySelector("h1")?.focus({ preventScroll: true });
}

export function link(path, text, attrs = {}) {
  return el("a", { href: BASE + path, ...attrs }, text);
}

function markCurrent(route) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.path === route.path) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function renderHeader(who) {
  const nav = document.getElementById("nav");
  const user = document.getElementById("user");
  clear(nav);
  clear(user);
  if (!who.authenticated) return;
  append(nav, [
    el(
      "ul",
      {},
      ROUTES.filter((r) => r.nav).map((r) =>
        el("li", {}, el("a", { href: BASE + r.path, dataset: { path: r.path } }, r.title)),
      ),
    ),
  ]);
  append(user, [
    el("span", { class: "who" }, "Signed in as ", el("strong", {}, who.developer || "?")),
    el("button", { type: "button", class: "secondary", onclick: signOut }, "Sign out"),
  ]);
}

// Sign out: forget a pasted token; end a cookie session with POST /api/logout.
export async function signOut() {
  const main = document.getElementById("main");
  try {
    if (pastedToken()) usePastedToken(null);
    else await api("POST", "/api/logout");
  } catch (err) {
    showError(main, err);
    return;
  }
  status = null;
  await navigate("/sign-in");
}

document.addEventListener("click", (event) => {
  const a = event.target.closest && event.target.closest("a[href]");
  if (!a || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.hash && url.pathname === location.pathname) return; // the skip link, anchors
  if (url.origin !== location.origin || !url.pathname.startsWith(`${BASE}/`) || a.hasAttribute("download")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => show());

show();
