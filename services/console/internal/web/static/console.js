// Assent console: progressive enhancement only. Every page works without
// this file; with it, deadlines count down every second, and live updates
// (htmx's SSE extension) wait while someone is typing in the part of the
// page they would replace. No inline script: the CSP allows 'self' only.
(function () {
  'use strict';

  function left(ms) {
    if (ms <= 0) { return 'deadline passed'; }
    var s = Math.round(ms / 1000);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    if (h >= 24) { return d + 'd ' + (h % 24) + 'h left'; }
    if (h > 0) { return h + 'h ' + m + 'm left'; }
    if (m > 0) { return m + 'm ' + (sec < 10 ? '0' : '') + sec + 's left'; }
    return sec + 's left';
  }

  function tick() {
    var now = Date.now();
    var els = document.querySelectorAll('[data-deadline]');
    for (var i = 0; i < els.length; i++) {
      var t = Date.parse(els[i].getAttribute('data-deadline'));
      if (!isNaN(t)) {
        var text = left(t - now);
        if (els[i].textContent !== text) { els[i].textContent = text; }
      }
    }
  }

  // A region is being edited when one of its fields has the focus or
  // holds text: replacing it would lose what was typed.
  function editing(region) {
    var fields = region.querySelectorAll('textarea, input:not([type=hidden]), select');
    for (var i = 0; i < fields.length; i++) {
      if (fields[i] === document.activeElement || (fields[i].tagName !== 'SELECT' && fields[i].value !== '')) { return true; }
    }
    return false;
  }

  var held = [];
  document.addEventListener('htmx:sseBeforeMessage', function (e) {
    var region = e.target;
    if (editing(region)) {
      e.preventDefault();
      held = held.filter(function (h) { return h.region !== region; });
      held.push({ region: region, data: e.detail.data });
      region.setAttribute('data-updates-held', '');
    }
  });

  function release() {
    held = held.filter(function (h) {
      if (editing(h.region)) { return true; }
      h.region.removeAttribute('data-updates-held');
      window.htmx.swap(h.region, h.data, { swapStyle: 'innerHTML' });
      return false;
    });
  }
  document.addEventListener('focusout', function () { window.setTimeout(release, 0); });
  document.addEventListener('htmx:afterSwap', tick);
  document.addEventListener('htmx:sseMessage', tick);

  tick();
  window.setInterval(tick, 1000);
})();
