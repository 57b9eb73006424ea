// Builds and downloads: per app, its versions with their files and downloads per UTC day (a
// chart, one line per version), the public "latest" link of each platform it has a build for,
// and the caller's web-app builds with their status. Backed by GET /api/apps/{app}/builds
// (downloadsByDay per build) and GET /api/v1/builds.
import { api, chart, clearErrors, el, field, fmtNumber, fmtTime, heading, showError, table } from "../app.js";

const COLOURS = ["#1d4ed8", "#a4161a", "#166534", "#7c2d12", "#6b21a8", "#0f766e"];

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
    ["7", "14", "30", "90"].map((d) =>
      el("option", { value: d, selected: d === (params.query.get("days") || "14") }, `${d} days`),
    ),
  );
  const form = el(
    "form",
    { class: "card inline", novalidate: true },
    field("App", appSelect),
    field("Range", days),
    el("button", { type: "submit" }, "Show"),
  );
  const result = el("section", { "aria-live": "polite", "aria-label": "Versions and downloads" });
  const web = el("section", { "aria-labelledby": "web-builds" });
  main.append(heading("Builds"), form, result, web);
  const load = async () => {
    clearErrors(form);
    if (!appSelect.value) {
      result.replaceChildren(el("p", {}, "You have no apps yet."));
      return;
    }
    result.replaceChildren(el("p", { class: "meta" }, "Loading…"));
    try {
      const path = `/api/apps/${encodeURIComponent(appSelect.value)}/builds?limit=100&days=${days.value}`;
      const body = await api("GET", path);
      result.replaceChildren(...versionsView(body));
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
  await webBuilds(web);
}

// The days of the range, oldest first, as "YYYY-MM-DD" (UTC), ending today.
function dayRange(count) {
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  return Array.from({ length: count }, (_, i) => new Date(today - (count - 1 - i) * 86400000).toISOString().slice(0, 10));
}

function versionsView(body) {
  if (!body.builds.length) return [el("p", {}, `${body.app} has no builds yet.`)];
  const versions = new Map(); // version -> builds, newest version first (as listed)
  for (const b of body.builds) {
    if (!versions.has(b.version)) versions.set(b.version, []);
    versions.get(b.version).push(b);
  }
  const rows = [...versions.entries()].map(([version, builds]) => {
    const total = builds.reduce((n, b) => n + b.downloads, 0);
    const files = el(
      "ul",
      { class: "files" },
      builds.map((b) =>
        el(
          "li",
          {},
          el("a", { href: `/api/apps/${encodeURIComponent(b.app)}/versions/${encodeURIComponent(version)}/${encodeURIComponent(b.fileName)}` }, b.fileName),
          ` (${b.os}/${b.architecture}/${b.format}, ${fmtNumber(b.size)} bytes, ${fmtNumber(b.downloads)} downloads)`,
        ),
      ),
    );
    return [version, files, fmtNumber(total), fmtTime(builds[builds.length - 1].uploadedAt)];
  });
  const versionsTable = table(["Version", "Files", "Downloads", "Uploaded"], rows, `Versions of ${body.app}, newest first`);
  versionsTable.querySelector("table").classList.add("versions");

  // The latest link per platform: one per os/architecture/format the app has a build for.
  const platforms = new Map();
  for (const b of body.builds) platforms.set(`${b.os}/${b.architecture}/${b.format}`, b);
  const latest = el(
    "ul",
    { class: "latest" },
    [...platforms.keys()].sort().map((key) =>
      el("li", {}, el("a", { href: `/api/apps/${encodeURIComponent(body.app)}/latest/${key}` }, `Latest ${key}`)),
    ),
  );

  const dayList = dayRange(body.days);
  const perVersion = [...versions.entries()].reverse().map(([version, builds]) => {
    const counts = new Map(dayList.map((d) => [d, 0]));
    for (const b of builds) for (const { day, count } of b.downloadsByDay) if (counts.has(day)) counts.set(day, counts.get(day) + count);
    return { version, counts: dayList.map((d) => counts.get(d)) };
  });
  const totalInRange = perVersion.reduce((n, v) => n + v.counts.reduce((a, b) => a + b, 0), 0);
  const plot = el("figure", { class: "chart", "aria-label": "Downloads per day by version" });
  const caption = el(
    "figcaption",
    { class: "meta" },
    `Downloads per UTC day over the last ${body.days} days, by version: `,
    perVersion.map((v) => `${v.version} ${v.counts.reduce((a, b) => a + b, 0)}`).join(", "),
    ` (${totalInRange} in all).`,
  );
  queueMicrotask(() => {
    const xs = dayList.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    chart(
      plot,
      {
        height: 220,
        series: [{}, ...perVersion.map((v, i) => ({ label: v.version, stroke: COLOURS[i % COLOURS.length], width: 2 }))],
      },
      [xs, ...perVersion.map((v) => v.counts)],
    )
      .then(() => plot.append(caption))
      .catch(() => plot.append(caption));
  });
  return [
    el("h2", {}, "Versions"),
    el("p", { class: "meta" }, `${body.total} builds.`),
    versionsTable,
    el("h2", {}, "Downloads per day"),
    plot,
    el("h2", {}, "Latest per platform"),
    el("p", { class: "meta" }, "Public links: each answers the newest build for that platform (and counts a download)."),
    latest,
  ];
}

async function webBuilds(section) {
  section.append(el("h2", { id: "web-builds" }, "Web-app builds"));
  try {
    const body = await api("GET", "/api/v1/builds?limit=50");
    if (!body.builds.length) {
      section.append(el("p", {}, "No web-app builds yet."));
      return;
    }
    const rows = body.builds.map((b) => [
      b.name,
      b.platform,
      b.version,
      el("span", { class: `status status-${b.status}` }, b.status),
      fmtTime(b.createdAt),
      b.downloadUrl ? el("a", { href: b.downloadUrl }, "Download") : b.error || "—",
    ]);
    const node = table(["Name", "Platform", "Version", "Status", "Created", "Result"], rows, "Web-app builds, newest first");
    node.querySelector("table").classList.add("web-builds");
    section.append(node);
  } catch (err) {
    showError(section, err);
  }
}
