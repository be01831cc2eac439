// coatcheck: passkeys and security keys (SPEC §8). Loaded only by the pages that
// need it; those pages carry <meta name="csrf-token"> and this markup:
//   <form data-webauthn="register" data-next="..."> with input[name=name],
//       input[type=checkbox][name=passkey] and button[data-passkey=register]
//   <button data-passkey="login" data-next="...">        passwordless login
//   <button data-webauthn="second-factor" data-next="..."> second step of a login
//   <button data-webauthn="reauth" data-next="...">        step-up
// Errors are written into the first [data-webauthn-error] element.
(() => {
  "use strict";

  let csrfToken = null;

  function currentToken() {
    if (csrfToken) return csrfToken;
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": currentToken(),
      },
      body: JSON.stringify(body || {}),
    });
    const fresh = response.headers.get("X-CSRF-Token");
    if (fresh) csrfToken = fresh;
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      throw new Error((data && data.message) || `The server answered ${response.status}.`);
    }
    if (data && typeof data.csrf_token === "string") csrfToken = data.csrf_token;
    return data;
  }

  function supported() {
    return (
      typeof window.PublicKeyCredential === "function" &&
      typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
      typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function"
    );
  }

  function showError(message) {
    const box = document.querySelector("[data-webauthn-error]");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = document.querySelector("[data-webauthn-error]");
    if (box) box.textContent = "";
  }

  function explain(error) {
    if (error && error.name === "NotAllowedError") {
      return "The passkey or security key was not used (cancelled or timed out).";
    }
    if (error && error.name === "InvalidStateError") {
      return "This authenticator is registered already.";
    }
    if (error && error.name === "SecurityError") {
      return "This site's address cannot use passkeys.";
    }
    return (error && error.message) || "Something went wrong.";
  }

  // Only a path on this site: never a redirect elsewhere.
  function go(next) {
    // A same-site path, or the absolute rd of a site the server checked (data-next is
    // always rendered from the server's own checked value).
    const local = typeof next === "string" && /^\/(?![/\\])/.test(next);
    const site = typeof next === "string" && /^https?:\/\/[a-z0-9.-]+(:[0-9]+)?\//i.test(next);
    const target = local || site ? next : "/account";
    window.location.assign(target);
  }

  async function create(options) {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
    const credential = await navigator.credentials.create({ publicKey });
    return credential.toJSON();
  }

  async function get(options) {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
    const credential = await navigator.credentials.get({ publicKey });
    return credential.toJSON();
  }

  async function register(form) {
    const nameField = form.querySelector('input[name="name"]');
    const passkeyBox = form.querySelector('input[name="passkey"]');
    const name = nameField ? nameField.value.trim() : "";
    const passkey = Boolean(passkeyBox && passkeyBox.checked);
    const options = await post("/api/webauthn/register/begin", { name: name || null, passkey });
    const credential = await create(options);
    await post("/api/webauthn/register/finish", { credential });
    go(form.dataset.next);
  }

  async function passkeyLogin(button) {
    // Discoverable: the authenticator offers the passkeys it holds for this site.
    const options = await post("/api/webauthn/login/begin", {});
    const credential = await get(options);
    await post("/api/webauthn/login/finish", { credential });
    go(button.dataset.next);
  }

  async function secondFactor(button) {
    const options = await post("/api/login/second-factor/webauthn");
    const credential = await get(options);
    await post("/api/login/second-factor", { method: "webauthn", credential });
    go(button.dataset.next);
  }

  async function reauth(button) {
    const options = await post("/api/reauth/webauthn");
    const credential = await get(options);
    await post("/api/reauth", { method: "webauthn", credential });
    go(button.dataset.next);
  }

  async function run(control, action) {
    clearError();
    if (!supported()) {
      showError("This browser cannot use passkeys or security keys here.");
      return;
    }
    control.disabled = true;
    control.setAttribute("aria-busy", "true");
    try {
      await action();
    } catch (error) {
      showError(explain(error));
    } finally {
      control.disabled = false;
      control.removeAttribute("aria-busy");
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.dataset.webauthn !== "register") return;
    event.preventDefault();
    const button = form.querySelector('[data-passkey="register"]') || form;
    run(button, () => register(form));
  });

  const actions = {
    login: passkeyLogin,
    "second-factor": secondFactor,
    reauth,
  };

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const button = target && target.closest('button[data-passkey="login"], button[data-webauthn]');
    if (!button || button.dataset.webauthn === "register") return;
    const key = button.dataset.passkey === "login" ? "login" : button.dataset.webauthn;
    if (!Object.prototype.hasOwnProperty.call(actions, key)) return;
    const action = actions[key];
    event.preventDefault();
    run(button, () => action(button));
  });
})();
