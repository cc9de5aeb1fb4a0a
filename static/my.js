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
