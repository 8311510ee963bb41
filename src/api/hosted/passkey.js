// The passkey button of the hosted sign-in page: the page's only script.
// It asks for usernameless options, lets the browser pick a passkey, and
// posts the assertion with the page's form (the server answers the form).
(function () {
  "use strict";
  var form = document.getElementById("passkey-form");
  var button = document.getElementById("passkey-button");
  if (!form || !button || !window.PublicKeyCredential) { return; }
  function b64u(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function u64(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    fetch("/v1/sessions/passkey/options", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}"
    }).then(function (r) { return r.json(); }).then(function (o) {
      var pk = o.public_key || o.publicKey;
      pk.challenge = b64u(pk.challenge);
      (pk.allowCredentials || []).forEach(function (c) { c.id = b64u(c.id); });
      return navigator.credentials.get({ publicKey: pk }).then(function (cred) {
        var r = cred.response;
        var json = {
          id: cred.id, rawId: u64(cred.rawId), type: cred.type,
          clientExtensionResults: cred.getClientExtensionResults(),
          response: {
            authenticatorData: u64(r.authenticatorData),
            clientDataJSON: u64(r.clientDataJSON),
            signature: u64(r.signature),
            userHandle: r.userHandle ? u64(r.userHandle) : null
          }
        };
        form.elements.challenge_id.value = o.challenge_id;
        form.elements.credential.value = JSON.stringify(json);
        form.submit();
      });
    }).catch(function () { /* cancelled: the password form stays */ });
  });
})();
