// keyclerk customer page: progressive enhancement only; every page works without it.
// Copy buttons (hidden without script): copy the text of the element they name,
// then say so in the page's language (the button's data-copied).
document.querySelectorAll('button[data-copy]').forEach(function (button) {
  var target = document.getElementById(button.getAttribute('data-copy'));
  if (!target || !navigator.clipboard) { return; }
  var label = button.textContent;
  button.hidden = false;
  button.addEventListener('click', function () {
    navigator.clipboard.writeText(target.value).then(function () {
      button.textContent = button.getAttribute('data-copied') || label;
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  });
});
// Offline activation: a QR code opens /my/offline#KCA…; the code in the fragment
// (which no server sees) fills the form, and leaves the address.
(function () {
  var field = document.getElementById('code');
  var code = decodeURIComponent(window.location.hash.slice(1));
  if (!field || !/^KCA/i.test(code)) { return; }
  field.value = code;
  history.replaceState(null, '', window.location.pathname + window.location.search);
}());
