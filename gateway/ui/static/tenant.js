// A tenant's page: their domains with records, findings, certificate and events; attach, verify
// now, detach. While domains are waiting (pending, or verified and waiting for a certificate) the
// list is read again by polling GET, never by POST …/verify, with a back-off from 5 s to 60 s;
// otherwise once a minute; never while the tab is hidden.
"use strict";

const FIRST_DELAY = 5000;
const LONGEST_DELAY = 60000;
const WAITING = new Set(["pending", "verified"]);

const state = {
  account: null,
  now: null,
  domains: [],
  cards: new Map(), // hostname → { signature, node }
  verifyResults: new Map(), // hostname → { kind, text, checks }
  events: new Map(), // hostname → { updatedAt, events } once loaded
  openEvents: new Set(),
  confirming: new Set(),
  apps: [], // the tenant's registered apps, by name
  appsError: null,
  delay: FIRST_DELAY,
  timer: null,
};

function signature(domain) {
  // `now` included: a card shows times relative to it, so it is drawn again at each read.
  return JSON.stringify([
    domain,
    state.verifyResults.get(domain.domain) || null,
    state.confirming.has(domain.domain),
  ]);
}

function recordsTable(domain) {
  const rows = domain.instructions.records.map((record) =>
    el(
      "tr",
      {},
      el("td", { class: "mono" }, record.type),
      el("td", { class: "mono wrap" }, record.name, " ", copyButton(record.name, "Copy name")),
      el("td", { class: "mono wrap" }, record.value, " ", copyButton(record.value, "Copy value")),
    ),
  );
  return el(
    "table",
    { class: "records" },
    el("thead", {}, el("tr", {}, el("th", {}, "Type"), el("th", {}, "Name"), el("th", {}, "Value"))),
    el("tbody", {}, ...rows),
  );
}

function checkSection(domain) {
  const now = domain.now;
  const box = el("div", { class: "check" });
  const error = domain.last_check_error;
  if (error) {
    box.append(
      el(
        "div",
        { class: "finding finding-bad" },
        el("strong", {}, "What to fix "),
        el("code", {}, error.code),
        el("p", { class: "finding-message" }, error.message),
      ),
    );
  } else if (domain.last_checked_at) {
    box.append(el("p", { class: "finding finding-good" }, "The last check found nothing wrong."));
  } else {
    box.append(el("p", { class: "hint" }, "Not checked yet."));
  }
  box.append(
    el(
      "p",
      { class: "hint" },
      "Last check: " + when(domain.last_checked_at, now) + " · next: " + when(domain.next_check_at, now),
    ),
  );
  const result = state.verifyResults.get(domain.domain);
  if (result) {
    const panel = el("div", { class: "verify-result verify-" + result.kind }, el("p", {}, result.text));
    if (result.checks && result.checks.length) {
      panel.append(
        el(
          "ul",
          { class: "checks" },
          ...result.checks.map((check) =>
            el(
              "li",
              { class: check.ok ? "ok" : "bad" },
              el("span", { class: "check-name" }, (check.ok ? "✓ " : "✗ ") + check.check),
              " ",
              check.message,
            ),
          ),
        ),
      );
    }
    box.append(panel);
  }
  return box;
}

function certificateSection(domain) {
  const now = domain.now;
  const rows = [];
  if (domain.cert_expires_at) {
    rows.push(el("p", {}, "Expires: " + when(domain.cert_expires_at, now)));
    if ("cert_renewal_due_at" in domain) {
      rows.push(el("p", {}, "Renewal due: " + when(domain.cert_renewal_due_at, now)));
    }
    if (domain.cert_issuer) {
      rows.push(el("p", { class: "hint" }, "Issuer: " + domain.cert_issuer));
    }
  } else if (domain.status === "verified") {
    rows.push(el("p", { class: "hint" }, "No certificate yet: it is obtained on the first HTTPS visit."));
  } else {
    rows.push(el("p", { class: "hint" }, "No certificate yet: one is obtained once the domain is verified."));
  }
  return el("div", { class: "cert" }, ...rows);
}

function eventsSection(domain) {
  const details = el("details", { class: "events" }, el("summary", {}, "Event history"));
  const body = el("div", {});
  details.append(body);
  if (state.openEvents.has(domain.domain)) {
    details.open = true;
    fillEvents(domain, body);
  }
  details.addEventListener("toggle", () => {
    if (details.open) {
      state.openEvents.add(domain.domain);
      fillEvents(domain, body);
    } else {
      state.openEvents.delete(domain.domain);
    }
  });
  return details;
}

async function fillEvents(domain, body) {
  let known = state.events.get(domain.domain);
  if (!known || known.updatedAt !== domain.updated_at) {
    try {
      const answer = await api("GET", "/domains/" + encodeURIComponent(domain.domain) + "/events");
      known = { updatedAt: domain.updated_at, events: answer.events, now: answer.now };
      state.events.set(domain.domain, known);
    } catch (error) {
      clear(body);
      body.append(el("p", { class: "message message-error" }, "Cannot read the events: " + error.message));
      return;
    }
  }
  clear(body);
  const rows = known.events
    .slice()
    .reverse()
    .map((event) =>
      el(
        "tr",
        {},
        el("td", {}, when(event.created_at, known.now)),
        el("td", { class: "mono" }, event.type),
        el("td", {}, (event.from_status || "—") + " → " + event.to_status),
        el("td", { class: "wrap" }, [event.reason, event.message].filter(Boolean).join(": ")),
      ),
    );
  body.append(
    el(
      "table",
      { class: "event-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Event"), el("th", {}, "Move"), el("th", {}, "Why"))),
      el("tbody", {}, ...rows),
    ),
  );
}

function actions(domain) {
  const name = domain.domain;
  const row = el("div", { class: "actions" });
  const verify = el("button", { type: "button", class: "verify" }, "Verify now");
  verify.addEventListener("click", () => verifyNow(name, verify));
  row.append(verify);
  if (state.confirming.has(name)) {
    const yes = el("button", { type: "button", class: "danger confirm-detach" }, "Yes, detach");
    const no = el("button", { type: "button", class: "cancel-detach" }, "Cancel");
    yes.addEventListener("click", () => detach(name, yes));
    no.addEventListener("click", () => {
      state.confirming.delete(name);
      render();
    });
    row.append(
      el(
        "div",
        { class: "confirm", role: "alertdialog" },
        el("span", {}, "Detach " + name + "? It stops being served and its certificate is deleted."),
        yes,
        no,
      ),
    );
  } else {
    const detachButton = el("button", { type: "button", class: "detach" }, "Detach…");
    detachButton.addEventListener("click", () => {
      state.confirming.add(name);
      render();
    });
    row.append(detachButton);
  }
  return row;
}

function card(domain) {
  return el(
    "article",
    { class: "card domain", "data-domain": domain.domain },
    el(
      "header",
      { class: "domain-head" },
      el("h3", { class: "hostname" }, domain.domain),
      badge(domain.status),
      el("span", { class: "hint" }, "app " + domain.app + " · " + domain.kind + " · checked by " + domain.method.toUpperCase()),
    ),
    el(
      "div",
      { class: "columns" },
      el(
        "section",
        {},
        el("h4", {}, "Records to publish"),
        recordsTable(domain),
        el("ul", { class: "notes" }, ...domain.instructions.notes.map((note) => el("li", {}, note))),
      ),
      el(
        "section",
        {},
        el("h4", {}, "Last check"),
        checkSection(domain),
        el("h4", {}, "Certificate"),
        certificateSection(domain),
      ),
    ),
    eventsSection(domain),
    actions(domain),
  );
}

function render() {
  const list = document.getElementById("domains");
  document.getElementById("empty").hidden = state.domains.length > 0;
  const seen = new Set();
  let previous = null;
  for (const domain of state.domains) {
    seen.add(domain.domain);
    const sig = signature(domain);
    let entry = state.cards.get(domain.domain);
    if (!entry || entry.signature !== sig) {
      const node = card(domain);
      if (entry) {
        entry.node.replaceWith(node);
      }
      entry = { signature: sig, node };
      state.cards.set(domain.domain, entry);
    }
    // Keep the API's order (oldest first).
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== entry.node) {
      list.insertBefore(entry.node, expected);
    }
    previous = entry.node;
  }
  for (const [name, entry] of state.cards) {
    if (!seen.has(name)) {
      entry.node.remove();
      state.cards.delete(name);
    }
  }
  renderQuota();
}

function renderQuota() {
  const box = document.getElementById("quota");
  clear(box);
  const account = state.account;
  if (!account) {
    return;
  }
  const limits = account.limits;
  const used = state.domains.length;
  box.append(
    el(
      "p",
      { id: "quota-tenant" },
      el("strong", {}, used + " of " + limits.max_domains_per_tenant),
      " domains of this tenant",
      " ",
      el("progress", { max: limits.max_domains_per_tenant, value: Math.min(used, limits.max_domains_per_tenant) }),
    ),
  );
  const perApp = new Map();
  for (const domain of state.domains) {
    perApp.set(domain.app, (perApp.get(domain.app) || 0) + 1);
  }
  if (limits.max_domains_per_app === null) {
    box.append(el("p", { id: "quota-app", class: "hint" }, "No cap per app (only the tenant's quota)."));
  } else {
    box.append(
      el("p", { id: "quota-app" }, "At most " + limits.max_domains_per_app + " domains per app."),
      el(
        "ul",
        { class: "app-usage" },
        ...[...perApp.entries()].map(([app, n]) =>
          el("li", {}, el("span", { class: "mono" }, app), ": " + n + " of " + limits.max_domains_per_app),
        ),
      ),
    );
  }
}

// The app field offers the tenant's registered apps only: the API refuses any other name.
function renderAppChoice() {
  const select = document.getElementById("attach-app");
  const submit = document.querySelector("#attach button[type=submit]");
  const note = document.getElementById("attach-apps-note");
  const chosen = select.value;
  const apps = state.apps;
  clear(select);
  if (apps.length === 0) {
    select.append(el("option", { value: "" }, "No app registered"));
  } else if (apps.length > 1) {
    select.append(el("option", { value: "", disabled: true, selected: true }, "Choose an app"));
  }
  for (const app of apps) {
    select.append(el("option", { value: app }, app));
  }
  if (apps.includes(chosen)) {
    select.value = chosen;
  }
  select.disabled = apps.length === 0;
  submit.disabled = apps.length === 0;
  if (state.appsError) {
    showMessage(note, "Cannot read your apps: " + state.appsError + " (reload the page to try again)", "error");
  } else if (apps.length === 0) {
    showMessage(
      note,
      "No app is registered for " + state.account.tenant + " yet, so no domain can be attached. " +
        "The platform must register an app for this tenant first (domaingate apps add " +
        state.account.tenant + " APP); reload this page once it has.",
      "warn",
    );
  } else {
    showMessage(note, "", null);
  }
}

async function loadApps() {
  try {
    const answer = await api("GET", "/apps");
    state.apps = answer.apps.map((app) => app.app).sort();
    state.appsError = null;
  } catch (error) {
    state.apps = [];
    state.appsError = error.message;
  }
  renderAppChoice();
}

async function refresh() {
  const answer = await allDomains({});
  const before = new Map(state.domains.map((d) => [d.domain, d.status]));
  state.domains = answer.domains;
  state.now = answer.now;
  render();
  const moved =
    before.size !== state.domains.length || state.domains.some((d) => before.get(d.domain) !== d.status);
  return moved;
}

function waiting() {
  return state.domains.some((domain) => WAITING.has(domain.status));
}

function schedule() {
  clearTimeout(state.timer);
  const note = document.getElementById("refresh-note");
  if (!waiting()) {
    // Nothing to wait for: read once a minute, so statuses and times do not go stale.
    note.textContent = "";
    state.timer = setTimeout(tick, LONGEST_DELAY);
    return;
  }
  note.textContent =
    "Domains waiting for DNS or a certificate are read again in " + Math.round(state.delay / 1000) + " s.";
  state.timer = setTimeout(tick, state.delay);
}

async function tick() {
  if (document.hidden) {
    // Picked up again by the visibilitychange listener.
    return;
  }
  try {
    const moved = await refresh();
    state.delay = moved ? FIRST_DELAY : Math.min(LONGEST_DELAY, Math.round(state.delay * 1.5));
    showMessage(document.getElementById("page-message"), "", null);
  } catch (error) {
    state.delay = Math.min(LONGEST_DELAY, state.delay * 2);
    if (error.status !== 401) {
      showMessage(document.getElementById("page-message"), "Cannot refresh: " + error.message, "error");
    }
  }
  schedule();
}

function soon() {
  state.delay = FIRST_DELAY;
  schedule();
}

async function verifyNow(name, button) {
  button.disabled = true;
  button.textContent = "Checking…";
  try {
    const result = await api("POST", "/domains/" + encodeURIComponent(name) + "/verify");
    state.verifyResults.set(name, {
      kind: result.verified ? "ok" : "bad",
      text: result.verified
        ? "Verified: the DNS records are right (" + result.status + ")."
        : "Not verified yet: " + (result.last_check_error ? result.last_check_error.message : result.status),
      checks: result.checks,
    });
  } catch (error) {
    const text =
      error.code === "VERIFY_RATE_LIMITED"
        ? "The rate limit says no: " + error.message
        : "Cannot verify: " + error.message;
    state.verifyResults.set(name, { kind: "limited", text, checks: [] });
  }
  try {
    await refresh();
  } catch (error) {
    // The next tick says so.
  }
  render();
  soon();
}

async function detach(name, button) {
  button.disabled = true;
  try {
    await api("DELETE", "/domains/" + encodeURIComponent(name));
    state.confirming.delete(name);
    state.verifyResults.delete(name);
    state.openEvents.delete(name);
    showMessage(document.getElementById("page-message"), "Detached " + name + ".", "ok");
  } catch (error) {
    showMessage(document.getElementById("page-message"), "Cannot detach " + name + ": " + error.message, "error");
  }
  await refresh();
  schedule();
}

function wireAttach() {
  const form = document.getElementById("attach");
  const message = document.getElementById("attach-message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const domain = document.getElementById("attach-domain").value.trim();
    const app = document.getElementById("attach-app").value;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const created = await api("POST", "/domains", { body: { domain, app } });
      showMessage(message, "Attached " + created.domain + ": publish the records shown below.", "ok");
      // Clears the domain; the app stays chosen for the next one.
      document.getElementById("attach-domain").value = "";
      await refresh();
      soon();
    } catch (error) {
      showMessage(message, error.message + " (" + error.code + ")", "error");
      if (error.code === "INVALID_APP") {
        // The platform removed the app since the page read the list: offer the current one.
        await loadApps();
      }
    } finally {
      button.disabled = state.apps.length === 0;
    }
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  wireSignOut();
  if (!storedToken()) {
    signOut("Sign in first.");
    return;
  }
  try {
    state.account = await api("GET", "/account");
  } catch (error) {
    if (error.status !== 401) {
      showMessage(document.getElementById("page-message"), "Cannot load the page: " + error.message, "error");
    }
    return;
  }
  if (state.account.admin && !state.account.tenant) {
    location.assign("operator.html");
    return;
  }
  document.getElementById("who").textContent = "tenant " + state.account.tenant;
  await loadApps();
  wireAttach();
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      soon();
    }
  });
  try {
    await refresh();
  } catch (error) {
    showMessage(document.getElementById("page-message"), "Cannot list the domains: " + error.message, "error");
  }
  schedule();
});
