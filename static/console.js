// keyclerk console: progressive enhancement only; every page works without it.
// Dates are written in UTC by the server; here they are shown in the agent's own
// time zone, with the UTC time kept in the title (shown on hover).
document.querySelectorAll('time[datetime]').forEach(function (el) {
  var d = new Date(el.getAttribute('datetime'));
  if (isNaN(d)) { return; }
  el.title = el.getAttribute('datetime');
  el.textContent = d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
});
