/* tagserver demo: a sandbox standing in for Meta's Pixel library (fbevents.js). It sends nothing
   to Meta; it records each fbq call at /demo/pixel so that /demo/events can show it. */
(function () {
  'use strict';
  var f = window.fbq;
  f.callMethod = function () {
    var body = JSON.stringify({ args: [].slice.call(arguments), page: location.href });
    fetch('/demo/pixel', { method: 'POST', body: body, keepalive: true });
  };
  var queued = f.queue || [];
  f.queue = [];
  queued.forEach(function (args) { f.callMethod.apply(f, args); });
})();
