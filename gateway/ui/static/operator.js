// The operator's page (admin token): the reconciler's health and its jobs' last runs, counts by
// status, what needs attention, and every tenant's domains filtered by status, tenant and app. Read again every
// 30 s while the tab is visible.
"use strict";

const REFRESH_EVERY = 30000;
const RUN_COLUMNS = ["Job", "Last run", "Last success", "State", "Last error"];
const COLUMNS = [
  "Domain",
  "Tenant",
  "App",
  "Status",
  "Last check",
  "Certificate ends",
  "Held on edges",
  "Problem",
];

let timer = null;

function filters() {
  return {
    status: document.getElementById("filter-status").value,
    tenant: document.getElementById("filter-tenant").value.trim(),
    app: document.getElementById("filter-app").value.trim(),
  };
}

function overdue(domain) {
  const now = new Date(domain.now);
  if (domain.status === "expiring") {
    return "certificate renewal overdue";
  }
  if (domain.cert_renewal_due_at && new Date(domain.cert_renewal_due_at) < now) {
    return "certificate renewal overdue";
  }
  if (domain.cert_expires_at && new Date(domain.cert_expires_at) < now) {
    return "certificate has ended";
  }
  return null;
}

function problem(domain) {
  const parts = [];
  if (domain.last_check_error) {
    parts.push(domain.last_check_error.code + ": " + domain.last_check_error.message);
  }
  const cert = overdue(domain);
  if (cert) {
    parts.push(cert);
  }
  return parts.join(" · ");
}

function table(node, domains) {
  clear(node);
  node.append(el("thead", {}, el("tr", {}, ...COLUMNS.map((name) => el("th", {}, name)))));
  const body = el("tbody", {});
  for (const domain of domains) {
    body.append(
      el(
        "tr",
        { "data-domain": domain.domain },
        el("td", { class: "mono wrap hostname" }, domain.domain),
        el("td", {}, domain.tenant),
        el("td", { class: "mono" }, domain.app),
        el("td", {}, badge(domain.status)),
        el("td", {}, when(domain.last_checked_at, domain.now)),
        el("td", {}, when(domain.cert_expires_at, domain.now)),
        // Which edges' storages hold the certificate (the admin token's view only).
        el("td", { class: "mono wrap edges" }, (domain.cert_edges || []).join(", ") || "-"),
        el("td", { class: "wrap problem" }, problem(domain)),
      ),
    );
  }
  node.append(body);
}

function fact(list, label, value, kind) {
  list.append(el("dt", {}, label), el("dd", { class: kind ? "fact-" + kind : null }, value));
}

function renderHealth(status) {
  const list = document.getElementById("health");
  clear(list);
  const r = status.reconciler;
  if (r.lease_held) {
    fact(list, "Lease", "held by " + r.holder + " (token " + r.lease_token + "), until " + when(r.lease_expires_at, status.now), "ok");
  } else {
    fact(
      list,
      "Lease",
      r.holder
        ? "not held: " + r.holder + "'s lapsed " + when(r.lease_expires_at, status.now) + ". No reconciler is working."
        : "not held: no reconciler has run on this database.",
      "bad",
    );
  }
  fact(list, "Last DNS check written", when(r.last_check_at, status.now));
  fact(list, "Checks more than 5 min late", String(r.checks_overdue), r.checks_overdue ? "bad" : "ok");
  const outbox = status.outbox;
  fact(
    list,
    "Webhook outbox",
    outbox.backlog
      ? outbox.backlog + " not delivered, the oldest since " + when(outbox.oldest_at, status.now)
      : "empty: every event delivered",
    outbox.backlog ? "warn" : "ok",
  );

  const counts = document.getElementById("counts");
  clear(counts);
  for (const [name, n] of Object.entries(status.counts)) {
    const button = el("button", { type: "button", class: "count", "data-status": name }, badge(name), el("span", { class: "count-n" }, String(n)));
    button.addEventListener("click", () => {
      document.getElementById("filter-status").value = name;
      loadList();
    });
    counts.append(button);
  }
}

// A job that never ran, that failed last, or whose last run is too old (the server's `late`).
function runState(run) {
  if (!run.last_run_at) {
    return ["never run", "warn"];
  }
  if (run.late) {
    return ["late", "bad"];
  }
  if (run.last_error) {
    return ["failed", "bad"];
  }
  return ["ok", "ok"];
}

function renderRuns(status) {
  const node = document.getElementById("runs");
  clear(node);
  node.append(el("thead", {}, el("tr", {}, ...RUN_COLUMNS.map((name) => el("th", {}, name)))));
  const body = el("tbody", {});
  for (const run of status.runs) {
    const [state, kind] = runState(run);
    body.append(
      el(
        "tr",
        { "data-job": run.job, "data-state": state },
        el("td", { class: "mono" }, run.job),
        el("td", {}, when(run.last_run_at, status.now)),
        el("td", {}, when(run.last_ok_at, status.now)),
        el("td", { class: "fact-" + kind }, state),
        el("td", { class: "wrap problem" }, run.last_error || ""),
      ),
    );
  }
  node.append(body);
}

function choices(id, values) {
  const list = document.getElementById(id);
  clear(list);
  for (const value of [...new Set(values)].sort()) {
    list.append(el("option", { value }));
  }
}

async function loadOverview() {
  const [status, all] = await Promise.all([api("GET", "/status"), allDomains({})]);
  renderHealth(status);
  renderRuns(status);
  const attention = all.domains.filter((domain) => problem(domain));
  document.getElementById("attention-empty").hidden = attention.length > 0;
  const attentionTable = document.getElementById("attention");
  attentionTable.hidden = attention.length === 0;
  table(attentionTable, attention);
  choices("tenant-choices", all.domains.map((d) => d.tenant));
  choices("app-choices", all.domains.map((d) => d.app));
}

async function loadList() {
  const chosen = filters();
  const query = {};
  if (chosen.status) {
    query.status = chosen.status;
  }
  if (chosen.app) {
    query.app = chosen.app;
  }
  const note = document.getElementById("list-note");
  try {
    const found = await allDomains(query, chosen.tenant || undefined);
    table(document.getElementById("all-domains"), found.domains);
    const shown = [chosen.status, chosen.tenant && "tenant " + chosen.tenant, chosen.app && "app " + chosen.app]
      .filter(Boolean)
      .join(", ");
    note.textContent = found.domains.length + " domain(s)" + (shown ? " — " + shown : "");
  } catch (error) {
    table(document.getElementById("all-domains"), []);
    note.textContent = "Cannot list: " + error.message;
  }
}

async function refreshAll() {
  clearTimeout(timer);
  try {
    await Promise.all([loadOverview(), loadList()]);
    showMessage(document.getElementById("page-message"), "", null);
  } catch (error) {
    if (error.status === 403) {
      showMessage(
        document.getElementById("page-message"),
        "This page needs the admin token; a tenant's token opens the tenant's page (domains.html).",
        "error",
      );
      return;
    }
    if (error.status !== 401) {
      showMessage(document.getElementById("page-message"), "Cannot refresh: " + error.message, "error");
    }
  }
  if (!document.hidden) {
    timer = setTimeout(refreshAll, REFRESH_EVERY);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wireSignOut();
  if (!storedToken()) {
    signOut("Sign in first.");
    return;
  }
  const form = document.getElementById("filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    loadList();
  });
  form.addEventListener("reset", () => setTimeout(loadList, 0));
  document.getElementById("refresh").addEventListener("click", refreshAll);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      refreshAll();
    }
  });
  refreshAll();
});
