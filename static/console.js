// keyclerk console: progressive enhancement only; every page works without it.
// Dates are written in UTC by the server; here they are shown in the agent's own
// time zone, with the UTC time kept in the title (shown on hover).
document.querySelectorAll('time[datetime]').forEach(function (el) {
  var d = new Date(el.getAttribute('datetime'));
  if (isNaN(d)) { return; }
  if (!el.title) { el.title = el.getAttribute('datetime'); }
  el.textContent = d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
});
// Copy buttons (hidden without script): copy the text of the element they name.
document.querySelectorAll('button[data-copy]').forEach(function (button) {
  var target = document.getElementById(button.getAttribute('data-copy'));
  if (!target || !navigator.clipboard) { return; }
  button.hidden = false;
  button.addEventListener('click', function () {
    var text = target.value !== undefined ? target.value : target.textContent;
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = 'Copied';
      setTimeout(function () { button.textContent = 'Copy the key'; }, 2000);
    });
  });
});
