// The passkey pages' script, served from /passkey/passkey.js (no inline script, so a strict
// Content-Security-Policy works). It drives both pages: #passkey-enroll (the enrollment form;
// a code in the URL fragment `#code=…` from the counter's QR code is filled in and removed from
// the address bar) and #passkey-login (the button on the login page). Options and credentials
// travel as JSON with base64url byte fields, converted here (works in browsers without
// PublicKeyCredential.parseCreationOptionsFromJSON).
(function () {
  "use strict";
  function toBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function toB64(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRF-Token": csrf},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (b) { if (!r.ok) { throw b; } return b; });
    });
  }
  function creationOptions(o) {
    o.challenge = toBuf(o.challenge);
    o.user.id = toBuf(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return o;
  }
  function requestOptions(o) {
    o.challenge = toBuf(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return o;
  }
  function credentialJSON(c) {
    var r = c.response;
    var ext = c.getClientExtensionResults ? c.getClientExtensionResults() : {};
    var out = {id: c.id, rawId: toB64(c.rawId), type: c.type, clientExtensionResults: ext,
               response: {clientDataJSON: toB64(r.clientDataJSON)}};
    if (c.authenticatorAttachment) { out.authenticatorAttachment = c.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = toB64(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    }
    if (r.authenticatorData) {
      out.response.authenticatorData = toB64(r.authenticatorData);
      out.response.signature = toB64(r.signature);
      if (r.userHandle) { out.response.userHandle = toB64(r.userHandle); }
    }
    return out;
  }
  function show(el, text, state) {
    var m = el.querySelector(".passkey-message");
    m.textContent = text;
    el.classList.remove("passkey-failed", "passkey-done");
    if (state) { el.classList.add("passkey-" + state); }
  }
  function failure(el, e) {
    if (e && e.message && e.error) { return e.message; }
    return el.dataset.msgCancelled;
  }
  function supported(el) {
    if (window.PublicKeyCredential && navigator.credentials) { return true; }
    show(el, el.dataset.msgUnsupported, "failed");
    return false;
  }

  var enroll = document.getElementById("passkey-enroll");
  if (enroll) {
    var form = enroll.querySelector("form"), input = enroll.querySelector("input[name=code]");
    var m = /(?:^|[#&])code=([A-Za-z0-9-]+)/.exec(window.location.hash);
    if (m && input) {
      input.value = m[1];
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!supported(enroll)) { return; }
      var csrf = enroll.dataset.csrf, button = form.querySelector("button");
      button.disabled = true;
      show(enroll, enroll.dataset.msgWorking);
      post(enroll.dataset.optionsUrl, csrf, {code: input.value})
        .then(function (o) {
          return navigator.credentials.create({publicKey: creationOptions(o)});
        })
        .then(function (c) {
          return post(enroll.dataset.verifyUrl, csrf, {credential: credentialJSON(c)});
        })
        .then(function (b) { show(enroll, b.message, "done"); })
        .catch(function (e) {
          show(enroll, failure(enroll, e), "failed");
          button.disabled = false;
        });
    });
  }

  var login = document.getElementById("passkey-login");
  if (login) {
    var go = login.querySelector("button");
    go.addEventListener("click", function () {
      if (!supported(login)) { return; }
      var csrf = login.dataset.csrf;
      go.disabled = true;
      show(login, login.dataset.msgWorking);
      post(login.dataset.optionsUrl, csrf, {})
        .then(function (o) {
          return navigator.credentials.get({publicKey: requestOptions(o)});
        })
        .then(function (c) {
          return post(login.dataset.verifyUrl, csrf, {credential: credentialJSON(c)});
        })
        .then(function (b) { window.location.assign(b.redirect); })
        .catch(function (e) { show(login, failure(login, e), "failed"); go.disabled = false; });
    });
  }
})();
