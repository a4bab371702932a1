// What every page shares: the token in session storage, the API call, building DOM from data.
// Values from the API are only ever placed with textContent, createTextNode or setAttribute on
// plain attributes, never parsed as HTML, so a hostile hostname or DNS finding stays text.
"use strict";

const TOKEN_KEY = "domaingate.token";
const FLASH_KEY = "domaingate.flash";

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (message) {
    sessionStorage.setItem(FLASH_KEY, message);
  }
  location.assign("index.html");
}

function takeFlash() {
  const message = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  return message;
}

// One API call. `token` defaults to the stored one; `tenant` acts for a tenant (admin token).
async function api(method, path, { body, token, tenant } = {}) {
  const headers = {
    Authorization: "Bearer " + (token || storedToken() || ""),
    Accept: "application/json",
  };
  if (tenant) {
    headers["X-Domaingate-Tenant"] = tenant;
  }
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch("/api/v1" + path, init);
  } catch (error) {
    throw new ApiError(0, "NETWORK", "The request could not be sent or the API cannot be reached (" + error.message + ").", null);
  }
  if (response.status === 204) {
    return null;
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    const found = data && data.error ? data.error : {};
    const retryAfter = response.headers.get("Retry-After");
    const failure = new ApiError(
      response.status,
      found.code || "HTTP_" + response.status,
      found.message || "The API answered " + response.status + ".",
      retryAfter === null ? null : Number(retryAfter),
    );
    if (response.status === 401 && !token) {
      signOut("Your token is no longer accepted (unknown or revoked). Sign in again.");
    }
    throw failure;
  }
  return data;
}

// Every domain of the caller, following the cursor (`query`: app and status filters).
async function allDomains(query, tenant) {
  const found = [];
  let cursor = null;
  let now = null;
  for (let page = 0; page < 50; page++) {
    const params = new URLSearchParams(query);
    params.set("limit", "500");
    if (cursor) {
      params.set("cursor", cursor);
    }
    const answer = await api("GET", "/domains?" + params.toString(), { tenant });
    found.push(...answer.domains);
    now = answer.now;
    cursor = answer.next_cursor;
    if (!cursor) {
      break;
    }
  }
  return { domains: found, now };
}

// el("td", { class: "x", title: "y" }, "text", otherNode): attributes set one by one, strings
// become text nodes.
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (name === "class") {
      node.className = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function clear(node) {
  while (node.firstChild) {
    node.firstChild.remove();
  }
}

function badge(status) {
  return el("span", { class: "badge badge-" + status, "data-status": status }, status);
}

// "2025-06-15 15:06 UTC (in 3 days)": relative to the server's `now`, never the browser's clock.
function when(value, now) {
  if (!value) {
    return "—";
  }
  const at = new Date(value);
  const shown = at.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  if (!now) {
    return shown;
  }
  return shown + " (" + relative((at - new Date(now)) / 1000) + ")";
}

function relative(seconds) {
  if (Math.abs(seconds) < 2) {
    return "now";
  }
  const future = seconds >= 0;
  let amount = Math.abs(seconds);
  let unit = "s";
  for (const [size, name] of [[86400, "d"], [3600, "h"], [60, "min"]]) {
    if (amount >= size) {
      amount = amount / size;
      unit = name;
      break;
    }
  }
  const text = Math.round(amount) + " " + unit;
  return future ? "in " + text : text + " ago";
}

function showMessage(node, text, kind) {
  clear(node);
  node.className = "message" + (kind ? " message-" + kind : "");
  node.hidden = !text;
  if (text) {
    node.append(text);
  }
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http on a non-local address: the Clipboard API is absent there.
  const scratch = el("textarea", { readonly: true, class: "scratch" });
  scratch.value = text;
  document.body.append(scratch);
  scratch.select();
  const done = document.execCommand("copy");
  scratch.remove();
  if (!done) {
    throw new Error("copy refused");
  }
}

function copyButton(text, label) {
  const button = el("button", { type: "button", class: "copy", "data-copy": text }, label);
  button.addEventListener("click", async () => {
    try {
      await copyText(text);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Select and copy by hand";
    }
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  });
  return button;
}

function wireSignOut() {
  const button = document.getElementById("sign-out");
  if (button) {
    button.addEventListener("click", () => signOut(null));
  }
}
