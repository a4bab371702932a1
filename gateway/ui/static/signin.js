// The sign-in page: check the token against the API, keep it in session storage, open the
// operator's page for the admin token and the tenant's page for a tenant's.
"use strict";

function pageFor(account) {
  return account.admin && !account.tenant ? "operator.html" : "domains.html";
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("signin");
  const input = document.getElementById("token");
  const message = document.getElementById("signin-message");
  const flash = takeFlash();
  if (flash) {
    showMessage(message, flash, "error");
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      showMessage(message, "Paste your API token first.", "error");
      return;
    }
    showMessage(message, "Checking the token…", null);
    try {
      const account = await api("GET", "/account", { token });
      sessionStorage.setItem(TOKEN_KEY, token);
      location.assign(pageFor(account));
    } catch (error) {
      const text =
        error.status === 401
          ? "This token is not accepted: it is unknown or has been revoked. " +
            "Check that you pasted all of it, or ask the platform's operator for a new one."
          : "Cannot sign in: " + error.message;
      showMessage(message, text, "error");
    }
  });
});
